"""Custom operations: each describes a state and yields only what closes the gap.

They yield nothing when the host is already right, so a second deploy changes nothing
and a dry run shows only real changes.
"""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path

from pyinfra import host
from pyinfra.api import FileUploadCommand, operation
from pyinfra.facts.files import File

from djdeploy.facts import DirectoryFiles, FileText, MigrationsPending, TreeHash

STAMP = ".djdeploy-requirements"


@operation()
def wheelhouse(src: Path, dest: str):
    """The folder `dest` holds exactly the wheels (and requirements file) in local `src`.

    + src: local wheelhouse built by build.wheelhouse
    + dest: remote folder, root-owned

    Each missing file is uploaded beside its final name and renamed, so an interrupted
    upload never leaves a partial wheel under a real name; files no longer wanted go.
    """
    wanted = sorted(p.name for p in Path(src).iterdir() if not p.name.startswith("."))
    present = host.get_fact(DirectoryFiles, path=dest)
    if not present:
        yield f"install -d -m 0755 -o root -g root {shlex.quote(dest)}"
    for name in wanted:
        if name not in present:
            final = f"{dest}/{name}"
            yield FileUploadCommand(str(Path(src) / name), f"{final}.part")
            yield f"chmod 0644 {shlex.quote(final)}.part && mv {shlex.quote(final)}.part {shlex.quote(final)}"
    extra = [name for name in present if name not in wanted]
    if extra:
        yield f"cd {shlex.quote(dest)} && rm -f -- " + " ".join(shlex.quote(n) for n in extra)


@operation()
def requirements(venv: str, wheels_dir: str, src: Path):
    """The virtualenv `venv` has the requirements of wheelhouse `src` installed, offline.

    + venv: remote virtualenv (made by pip.virtualenv)
    + wheels_dir: remote wheelhouse (see `wheelhouse`)
    + src: the same wheelhouse on the controller

    Installs with `--no-index` from the wheelhouse, and records what it installed in a
    stamp inside the venv: an unchanged wheelhouse is a no-op, unlike
    `pip.packages(requirements=...)`.
    """
    names = sorted(p.name for p in Path(src).iterdir() if not p.name.startswith("."))
    stamp = hashlib.sha256("\n".join(names).encode()).hexdigest()
    if host.get_fact(FileText, path=f"{venv}/{STAMP}") == stamp:
        return
    requirements_file = next(n for n in names if n.startswith("requirements-"))
    yield (f"{shlex.quote(venv)}/bin/pip install --quiet --disable-pip-version-check --no-index "
           f"--find-links {shlex.quote(wheels_dir)} -r {shlex.quote(wheels_dir)}/{requirements_file}")
    yield f"echo {stamp} > {shlex.quote(venv)}/{STAMP}"


@operation()
def source_tree(archive: Path, digest: str, dest: str):
    """`dest` holds exactly the project's files from `archive` (tree hash `digest`), root-owned.

    + archive: local tar built by build.source_archive
    + digest: its build.tree_hash, compared with the host's facts.TreeHash of `dest`
    + dest: remote folder of the code

    The new tree is unpacked beside `dest` and swapped in, so a failed upload or unpack
    leaves the old code in place. A hand-edited file is drift and gets replaced.
    """
    if host.get_fact(TreeHash, path=dest) == digest:
        return
    upload = f"{dest}.upload.tar"
    new, old = f"{dest}.new", f"{dest}.old"
    yield FileUploadCommand(str(archive), upload)
    yield " && ".join([
        f"rm -rf {shlex.quote(new)} {shlex.quote(old)}",
        f"install -d -m 0755 {shlex.quote(new)}",
        f"tar -C {shlex.quote(new)} --no-same-owner -xf {shlex.quote(upload)}",
        f"if [ -e {shlex.quote(dest)} ]; then mv {shlex.quote(dest)} {shlex.quote(old)}; fi",
        f"mv {shlex.quote(new)} {shlex.quote(dest)}",
        f"rm -rf {shlex.quote(old)} {shlex.quote(upload)}",
    ])


@operation()
def secret_key(path: str, group: str):
    """A random Django SECRET_KEY exists at `path` (root:`group` 0640), made once on the host.

    + path: remote file; an existing key is never replaced, so sessions survive deploys
    + group: the app's group, which may read it

    The key is generated on the host and never crosses the network or the output.
    """
    if host.get_fact(File, path=path):
        return
    quoted = shlex.quote(path)
    yield (f"umask 077 && python3 -c 'import secrets; print(secrets.token_urlsafe(50))' > {quoted}.new"
           f" && chown root:{shlex.quote(group)} {quoted}.new && chmod 0640 {quoted}.new"
           f" && mv {quoted}.new {quoted}")


@operation()
def migrations(root: str, code_dir: str, user: str):
    """The database has every migration of the deployed code applied.

    + root: the project folder holding .env
    + code_dir: the folder holding manage.py
    + user: the app user, who owns the database

    Runs `manage.py migrate` as the app user with the app's environment, only when
    `migrate --check` says something is unapplied.
    """
    if not host.get_fact(MigrationsPending, root=root, code_dir=code_dir, user=user):
        return
    script = (f"set -a; . {shlex.quote(root)}/.env; set +a; cd {shlex.quote(code_dir)} && "
              'exec "$VIRTUAL_ENV/bin/python" manage.py migrate --noinput')
    yield f"runuser -u {shlex.quote(user)} -- bash -c {shlex.quote(script)}"
