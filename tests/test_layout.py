"""The layout holds: no import circle in djdeploy/, the deploy never imports the test
tooling (fleet/), and pyinfra's private names are imported under djdeploy/speed/ only."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "djdeploy"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every import in the file, at any depth (in functions too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        edges[name] = set()
        for module, names in imports(path):
            for target in [f"{module}.{n}" for n in names] + [module]:
                if target in modules and target != name:
                    edges[name].add(target)
                    break
    return edges


def test_no_import_circle_in_the_package():
    edges = graph()
    assert len(edges) > 15  # every module was found
    state: dict[str, int] = {}
    circles = []

    def visit(node, path):
        state[node] = 1
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                circles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert circles == []


def test_the_deploy_never_imports_the_test_tooling():
    for path in [*PACKAGE.rglob("*.py"), *ROOT.glob("*.py")]:
        for module, _ in imports(path):
            assert module.split(".")[0] not in ("fleet", "conftest", "tests"), f"{path} imports {module}"


def test_pyinfras_private_names_are_used_under_speed_only():
    users = set()
    for path in PACKAGE.rglob("*.py"):
        for module, names in imports(path):
            if module.split(".")[0] in ("pyinfra", "pyinfra_cli") and any(n.startswith("_") for n in names):
                users.add(path.relative_to(PACKAGE).parts[0])
    assert users == {"speed"}
