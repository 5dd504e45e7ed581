"""The layout holds: no import circle in djdeploy/, the deploy never imports the test
tooling (fleet/), pyinfra's private names are used under djdeploy/speed/ only, and the
layers docs/architecture.md draws are the ones the imports draw."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
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


def importers(target: str) -> dict[str, list[ast.AST]]:
    """{module: [import nodes]} of the modules of djdeploy/ and the verbs (*.py at the top)
    that import `target` or a module under it."""
    found: dict[str, list] = {}
    for path in [*PACKAGE.rglob("*.py"), *ROOT.glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            if any(n == target or n.startswith(target + ".") for n in names):
                found.setdefault(module_name(path), []).append(node)
    return found


def layer(name: str) -> str:
    """A module's layer: its folder under djdeploy/ (config, ops, run, speed), else its name."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "djdeploy" else parts[0]


# What each layer may import besides itself (docs/architecture.md): config < build < ops <
# run < preflight < the verbs (deploy.py, ...); speed (switched on in djdeploy/__init__.py
# and inventory.py only) reaches into any of them, none of them into it.
MAY_IMPORT = {
    "errors": set(), "terminal": set(), "shell": set(), "transport": set(), "cachedir": set(),
    "config": {"errors", "shell"},
    "build": {"config", "errors", "cachedir"},
    "ops": {"config", "errors", "shell", "terminal"},
    "run": {"ops", "config", "errors", "shell", "terminal", "transport"},
    "preflight": {"build", "ops", "config", "errors", "shell", "terminal", "transport"},
    "inventory": {"djdeploy", "errors", "terminal", "speed"},
    "djdeploy": {"speed"},
    "speed": {"build", "ops", "run", "config", "errors", "shell", "terminal", "cachedir"},
}


def test_each_layer_imports_only_those_below_it():
    """Ops never import run (run reads ops' facts), nothing below preflight imports it,
    config imports nothing of the deploy but the shell quoting, and nothing but its switch
    imports speed."""
    wrong = []
    for module, targets in graph().items():
        for target in targets:
            if layer(target) != layer(module) and layer(target) not in MAY_IMPORT[layer(module)]:
                wrong.append(f"{module} imports {target}")
    assert sorted(MAY_IMPORT) == sorted({layer(m) for m in graph()})  # every layer has its rule
    assert wrong == []


def test_speed_is_imported_only_where_it_is_switched_on():
    """djdeploy.speed_up and djdeploy.inventory import it, inside a function and under
    `if SPEED` (DJDEPLOY_SPEED=off: plain pyinfra, nothing under speed/ imported)."""
    users = {m: nodes for m, nodes in importers("djdeploy.speed").items() if layer(m) != "speed"
             and m != "tests"}
    assert set(users) == {"djdeploy", "djdeploy.inventory"}, sorted(users)
    for module, nodes in users.items():
        path = PACKAGE / ("__init__.py" if module == "djdeploy" else "inventory.py")
        tree = ast.parse(path.read_text())
        guarded = [n for n in ast.walk(tree) if isinstance(n, ast.If) and isinstance(n.test, ast.Name)
                   and n.test.id == "SPEED"]
        inside = {n.lineno for g in guarded for n in ast.walk(g) if isinstance(n, (ast.Import, ast.ImportFrom))}
        for node in nodes:
            assert node.lineno in inside, f"{module} line {node.lineno}: speed imported outside `if SPEED`"


def test_with_speed_off_nothing_under_speed_is_imported():
    """What the verbs import, in a process of their own with DJDEPLOY_SPEED=off."""
    code = ("import sys; import djdeploy.inventory, djdeploy.preflight, djdeploy.ops.front, djdeploy.ops.postgresql, "
            "djdeploy.run.lock, djdeploy.run.rollout, djdeploy.run.remote, djdeploy.run.status; "
            "print(sorted(m for m in sys.modules if m.startswith('djdeploy.speed')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "DJDEPLOY_SPEED": "off"}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_no_pyinfra_private_attribute_is_touched_outside_speed():
    """Outside djdeploy/speed/ the deploy uses pyinfra's public API: `_inner`, how pyinfra's
    documentation has an operation call another (docs.pyinfra.com, "Writing Operations"),
    is the one underscore name it reaches."""
    own = {node.name if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else node.id
           for path in PACKAGE.rglob("*.py") for node in ast.walk(ast.parse(path.read_text()))
           if isinstance(node, (ast.FunctionDef, ast.ClassDef)) or (isinstance(node, ast.Name)
                                                                     and isinstance(node.ctx, ast.Store))}
    touched = []
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] == "speed":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and node.attr != "_inner" and node.attr not in own):
                touched.append(f"{path.relative_to(ROOT)}:{node.lineno} .{node.attr}")
    assert touched == []


def test_shell_words_are_quoted_in_one_place():
    """Every word the deploy puts into a host's shell is quoted by djdeploy.shell: no module
    quotes with shlex (or a helper of its own) beside it. (config/envfile.py's quote is the
    .env format's, which systemd's EnvironmentFile= reads too: not a shell word.)"""
    quoting = [f"{path.relative_to(PACKAGE)}: line {number}" for path in sorted(PACKAGE.rglob("*.py"))
               if path.name not in ("shell.py", "envfile.py")
               for number, line in enumerate(path.read_text().splitlines(), 1)
               if "shlex.quote" in line or re.search(r"def _?quote\(", line)]
    assert quoting == []
