"""pip download of wheels for the hosts' Python and machine, from the controller: nothing
built here but what source_builds allows (in the sandbox), and pip's failures as one line."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

from djdeploy.build import cache
from djdeploy.build.cache import BuildError
from djdeploy.build.locks import NATIVE, canonical
from djdeploy.build.sandbox import pure_wheel
from djdeploy.config.requirements import index_options

# pip's complaints when the index cannot be reached (it then reports "from versions: none").
NETWORK_ERRORS = ("NewConnectionError", "Failed to establish a new connection", "Max retries exceeded",
                  "Temporary failure in name resolution", "Name or service not known", "ConnectTimeoutError",
                  "Network is unreachable", "ProxyError", "SSLError", "ReadTimeoutError")


def _native(name: str, spec: str, required: str, where: str, requirements: Path, offered: str) -> str:
    """One line for a package in NATIVE that has no wheel for `where`: why, and what to do."""
    published, build, instead, runtime = NATIVE[name]
    if name == "pillow":  # wheels for every Python it supports, with its libraries inside
        return (f"{spec}{required} has no wheel for {where}, and building Pillow from source needs {build} on "
                f"the host, which the deploy does not do (it ships wheels): pin a version of Pillow that has "
                f"one in {requirements} ({offered}); its wheels carry the libraries it needs")
    bring = (f" (the deploy then installs {runtime} on the hosts)" if runtime else
             ", and add the hosts' libldap package (libldap-2.5-0 on Debian 12) to debian_packages")
    return (f"{spec}{required} {published}, and it is C code, which the deploy does not compile (it ships "
            f"wheels; it builds pure-Python ones only): use {instead} in {requirements}; or build a wheel of it "
            f"for {where} on a Debian like the hosts' with {build} (pip wheel {name}), and name its folder "
            f"with --find-links in {requirements} and in package_indexes{bring}")


def _name(spec: str) -> str:
    """The canonical project name of a requirement specifier ("Django>=6" -> "django")."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    return canonical(match[1]) if match else ""


def _platform_args(python: str, machine: str) -> list[str]:
    abi = "cp" + python.replace(".", "")
    args = ["--only-binary=:all:", "--python-version", python, "--implementation", "cp",
            "--abi", abi, "--abi", "abi3", "--abi", "none"]
    platforms = [f"manylinux_2_{minor}_{machine}" for minor in range(17, 40)]
    platforms += [f"manylinux2014_{machine}", f"linux_{machine}"]
    for platform in platforms:
        args += ["--platform", platform]
    return args


# pip download evaluates dependencies' environment markers for the Python that runs it (this
# machine's), whatever --python-version says: redis 8.2 needs async-timeout only below Python
# 3.11.3, so a lock made on 3.11.7 left it out and Debian 12's 3.11.2 could not import redis;
# `; python_version >= "3.12"` deps were lost for Debian 13 the same way. pip is run with the
# markers' environment of the hosts' Python: `python`.0, which takes every backport any
# release of that minor version needs (one too many is harmless, one too few is not).
TARGET_MARKERS = """
import sys
from pip._vendor.packaging import markers
python, machine = sys.argv.pop(1), sys.argv.pop(1)
_env = dict(markers.default_environment(), python_version=python, python_full_version=python + ".0",
            implementation_name="cpython", implementation_version=python + ".0", platform_machine=machine,
            platform_python_implementation="CPython", platform_system="Linux", sys_platform="linux", os_name="posix")
markers.default_environment = lambda: dict(_env)
from pip._internal.cli.main import main
sys.exit(main())
"""


def _pip_for(python: str, machine: str) -> list[str]:
    """pip, with environment markers evaluated for CPython `python` on Linux `machine`."""
    return [sys.executable, "-c", TARGET_MARKERS, python, machine]


def download(args: list[str], python: str, machine: str, dest: Path, allowed: tuple = (),
                  dry: bool = False) -> subprocess.CompletedProcess:
    """pip download of wheels only, for `python`: nothing is built here and no package's
    code runs. A package published as source only stops the run (BuildError), unless
    `allowed` (data's source_builds) names it: it is then built into a wheel in a sandbox
    (`sandbox.pure_wheel`), when it is pure Python (the same on every Python and machine), and the
    download tried again; a dry run (`dry`) builds nothing and says what it would build."""
    built = cache.CACHE / "built"
    built.mkdir(parents=True, exist_ok=True)
    tried = set()
    while True:
        command = [*_pip_for(python, machine), "download", "--disable-pip-version-check",
                   *_platform_args(python, machine), "--find-links", str(built), "-d", str(dest), *args]
        result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if result.returncode == 0 or _unreachable(result.stdout):
            return result
        # What pip found no wheel of: named directly, or as what a candidate "depends on".
        wanted = re.findall(r"No matching distribution found for (\S+)", result.stdout)
        wanted += re.findall(r" depends on ([A-Za-z0-9][\w.\-]*(?:[<>=!~]=?[\w.*]+)?)\s*$", result.stdout, re.M)
        wanted = [spec for spec in dict.fromkeys(wanted) if spec not in tried]
        tried.update(wanted)
        index = _index_options(args)
        wanted = [spec for spec in wanted if _name(spec) not in NATIVE]  # C code: never built here
        wanted = [spec for spec in wanted if not _for_another_python(spec, result.stdout)]
        sources = [spec for spec in wanted if _has_source(spec, index, python, machine, built)]
        refused = [spec for spec in sources if not source_allowed(spec, allowed)]
        if refused:
            spec, name = refused[0], _name(refused[0])
            files = [a for i, a in enumerate(args[1:]) if args[i] == "-r"]
            raise BuildError(f"{spec} has no wheel for Python {python} ({machine}), only a source distribution, "
                             f"and building one runs its code on this machine: pin a version that has a wheel in "
                             f"{files[0] if files else 'the requirements'}, or allow building it from source (in a "
                             f"sandbox, pure Python only) with source_builds = [\"{name}\"] in group_data or the "
                             f"app's djdeploy.toml")
        if sources and dry:
            for spec in sources:
                print(f"would build {spec} from source (source_builds allows it)", file=sys.stderr, flush=True)
            raise BuildError(f"would build {', '.join(sources)} from source: a dry run builds nothing, and the "
                             "lock, release and virtualenv depend on what it builds: run without --dry to build it "
                             "(in a sandbox), then --dry shows the plan")
        if not any([pure_wheel(spec, built, index) for spec in sources]):
            return result


def _for_another_python(spec: str, output: str) -> bool:
    """True if pip ignored a version that `spec` asks for because it needs another Python
    (Django 6 on 3.11): the answer is to pin another version (`explain`), not to build one."""
    from packaging.requirements import InvalidRequirement, Requirement
    ignored = re.search(r"require a different python version: (.*)$", output, re.M)
    try:
        wanted = Requirement(spec).specifier
    except InvalidRequirement:
        return False
    versions = re.findall(r"(\S+) Requires-Python", ignored[1]) if ignored else []
    return any(wanted.contains(version, prereleases=True) for version in versions)


def source_allowed(spec: str, allowed) -> bool:
    """True if data's source_builds (`allowed`: names, or "*") lets `spec` be built from source."""
    return "*" in allowed or _name(spec) in {canonical(name) for name in allowed}


SKIPPED_SOURCE = re.compile(r"Skipping link: No sources permitted for ([A-Za-z0-9][A-Za-z0-9._-]*): (\S+)")


def _has_source(spec: str, index: str, python: str, machine: str, built: Path) -> bool:
    """True if the index offers a source distribution of `spec`'s project (pip, told wheels
    only, logs each one it skips): asked without downloading or building anything."""
    with tempfile.TemporaryDirectory(prefix=".probe-", dir=built.parent) as tmp:
        Path(tmp, "probe.txt").write_text(index + spec + "\n")
        probe = subprocess.run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-vv",
                                "--no-deps", *_platform_args(python, machine), "--find-links", str(built),
                                "-d", f"{tmp}/out", "-r", f"{tmp}/probe.txt"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return any(canonical(name) == _name(spec) and not link.endswith(".whl")
               for name, link in SKIPPED_SOURCE.findall(probe.stdout))


INDEX_OPTION = re.compile(r"^\s*(--index-url|-i|--extra-index-url|--find-links|-f|--trusted-host|--no-index)\b.*$", re.M)


def _index_options(args: list[str]) -> str:
    """The index options of the requirements file among pip's `args`, as requirements lines
    (a --find-links folder named relative to the file made absolute)."""
    files = [Path(args[i + 1]) for i, arg in enumerate(args[:-1]) if arg == "-r"]
    lines = []
    for f in files:
        for option, value in index_options(f):
            if option in ("--find-links", "-f") and "://" not in value and (f.parent / value).exists():
                value = str((f.parent / value).resolve())
            lines.append(f"{option} {value}".strip() + "\n")
    return "".join(lines)



def _unreachable(output: str) -> bool:
    return any(marker in output for marker in NETWORK_ERRORS)


def explain(output: str, requirements: Path, python: str, machine: str) -> str:
    """pip's failure to download `requirements` for `python`, as one line naming the
    requirement at fault and what to do."""
    where = f"Python {python} ({machine})"
    missing = re.search(r"satisfies the requirement (\S+?);?(?: [^()]*)?(?: \(from ((?:[^()]|\([^()]*\))*)\))? "
                        r"\(from versions: ([^)]*)\)", output)
    if missing:
        spec, parent, versions = missing.groups()
        required = f" (required by {parent.split('->')[0].strip()})" if parent and "-r " not in parent else ""
        if _unreachable(output):
            return (f"{spec}{required}: could not reach the package index to download it for {where}; "
                    f"check the network (or pip's index settings) and run again")
        offered = versions.split(", ")
        shown = f"versions with one: {'..., ' if len(offered) > 5 else ''}{', '.join(offered[-5:])}"
        if _name(spec) in NATIVE:
            return _native(_name(spec), spec, required, where, requirements, shown)
        if versions.strip() == "none":
            return (f"{spec}{required}: no such package on the package index, or no wheel of it for {where}; "
                    f"check its name in {requirements}")
        # Versions pip skipped for their Requires-Python (e.g. Django 6 on Python 3.11).
        skipped = re.search(r"require a different python version: (\S+) Requires-Python (\S+)", output)
        if skipped and skipped[1] not in offered:
            return (f"{spec}{required} has no version for {where} ({shown}; {skipped[1]} needs Python "
                    f"{skipped[2]}): pin a version that runs on Python {python} in {requirements}, or move these "
                    f"hosts to a Debian with a newer Python (Debian 13 has 3.13)")
        return (f"{spec}{required} has no wheel for {where} ({shown}); pin a version that has one in {requirements}")
    if _unreachable(output):
        return f"could not reach the package index for {requirements} ({where}); check the network and run again"
    causes = re.search(r"The conflict is caused by:\n((?:[ \t]+\S.*\n?)+)", output)
    if causes:
        lines = "; ".join(line.strip() for line in causes[1].splitlines())
        return f"the requirements in {requirements} conflict for {where}: {lines}"
    errors = [line[len("ERROR: "):].strip() for line in output.splitlines() if line.startswith("ERROR: ")]
    last = errors[0] if errors else (output.strip().splitlines() or ["(no output)"])[-1]
    return f"could not download the wheels of {requirements} for {where}: {last}"
