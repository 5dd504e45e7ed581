"""The .env file: where secrets come from, and how .env holds every value byte for byte.

A host's secrets, later sources winning:

    secrets/all.toml             untracked, mode 0600 (see secrets/example.toml)
    secrets/<group>.toml         for each group the host is in
    DJDEPLOY_SECRET_<NAME>=...   in the controller's environment

They never enter host data (so `pyinfra ... debug-inventory` cannot show them), never
an argument of a command, never a diff: `uploads.env_file` sends .env over its SSH
channel's stdin and reports only which keys changed. DJDEPLOY_SECRETS_DIR moves the
folder. Django's SECRET_KEY needs none of this: the deploy makes it on the host.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import stat
import subprocess
import tomllib
from pathlib import Path

from djdeploy.config.keys import ENV_KEY, check_value, named_groups
from djdeploy.errors import DataError

ENV_PREFIX = "DJDEPLOY_SECRET_"
NEED_ESCAPE = re.compile(r'(["\\$`])')  # special inside double quotes, to bash and to systemd


class Secrets(dict):
    """NAME -> value; shows only its names, wherever it is printed or logged."""

    def __repr__(self) -> str:
        return f"Secrets({', '.join(self)})"

    __str__ = __repr__


def folder() -> Path:
    return Path(os.environ.get("DJDEPLOY_SECRETS_DIR", "secrets"))


def quote(value: str) -> str:
    """`value` in double quotes, as bash and systemd's EnvironmentFile= both read it back.

    Inside double quotes both drop the backslash before exactly these four: " \\ $ `
    and keep every other character, backslashes included, as it is.
    """
    return '"' + NEED_ESCAPE.sub(r"\\\1", value) + '"'


def _tracked(path: Path) -> bool:
    try:
        result = subprocess.run(["git", "ls-files", "--error-unmatch", path.name], cwd=path.parent,
                                capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


@functools.lru_cache(maxsize=None)
def _read_file(path: Path) -> dict:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise DataError(f"{path}: secrets file is readable by others (mode {stat.S_IMODE(mode):04o}): "
                        f"run `chmod 600 {path}`")
    if _tracked(path):
        raise DataError(f"{path}: secrets file is tracked by git: `git rm --cached {path}`, rotate "
                        "the secrets it held, and keep it untracked (secrets/.gitignore)")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not valid TOML ({str(error).splitlines()[0]}): write NAME = \"value\" lines")
    for key, value in data.items():
        if not ENV_KEY.match(key):
            raise DataError(f"{path}: {key!r} is not a valid variable name (letters, digits, _)")
        check_value(str(path), key, value)
    return data


def load(host_name: str, groups, required=(), taken=()) -> Secrets:
    """The secrets for a host in groups `groups`; every name in `required` must be set, and
    none may be a variable the deploy sets itself (`taken`)."""
    values = Secrets()
    origin: dict[str, str] = {}
    for name in ["all", *[g for g in named_groups(groups) if g != "all"]]:
        path = folder() / f"{name}.toml"
        if path.is_symlink():  # git's and the mode's checks would see its target, or nothing
            raise DataError(f"{path}: a symlink (to {os.readlink(path)}): secrets files must be regular files: "
                            f"put the file itself in {folder()} (chmod 600, untracked)")
        if path.is_file():
            for key, value in _read_file(path).items():
                values[key], origin[key] = value, str(path)
    for variable, value in os.environ.items():
        if variable.startswith(ENV_PREFIX) and len(variable) > len(ENV_PREFIX):
            key = variable[len(ENV_PREFIX):]
            if not ENV_KEY.match(key):
                raise DataError(f"environment: {variable} does not end in a valid variable name")
            values[key] = check_value(f"environment variable {variable}", key, value)
            origin[key] = variable
    clash = [key for key in values if key in taken]
    if clash:
        raise DataError(f"host {host_name}: secret {clash[0]} ({origin[clash[0]]}) would replace a variable "
                        "the deploy sets in .env: rename the secret")
    missing = [key for key in required if key not in values]
    if missing:
        groups_shown = ", ".join(named_groups(groups)) or "all"
        raise DataError(f"host {host_name}: secret {', '.join(missing)} not set: put it in "
                        f"{folder()}/<group>.toml (groups: {groups_shown}; see secrets/example.toml) "
                        f"or export {ENV_PREFIX}{missing[0]}")
    return values


def line_digests(text: str, salt: str) -> list[list[str]]:
    """[name, digest] per line of an .env text: what the EnvFileLines fact returns for the host's.

    Comments and blank lines are named "#". Digests are salted (with the project), so
    they match no table of digests of common values.
    """
    out = []
    for line in text.encode().split(b"\n"):
        name = line.split(b"=", 1)[0].decode("ascii", "replace") if b"=" in line and not line.startswith(b"#") else "#"
        out.append([name, hashlib.sha256(salt.encode() + b"\0" + line).hexdigest()[:32]])
    return out


def file_digest(text: str, salt: str) -> str:
    """What the EnvFile fact returns for a host whose .env is `text`."""
    return hashlib.sha256(salt.encode() + b"\0" + text.encode()).hexdigest()


def changes(present: list, wanted: list) -> list[str]:
    """What differs between two digest lists, by name only: ["API_TOKEN: changed", ...]."""
    before = {name: digest for name, digest in present if name != "#"}
    after = {name: digest for name, digest in wanted if name != "#"}
    out = [f"{name}: added" for name in after if name not in before]
    out += [f"{name}: changed" for name in after if name in before and before[name] != after[name]]
    out += [f"{name}: removed" for name in before if name not in after]
    if not out and present != wanted:
        out.append("comments or order changed")
    return out
