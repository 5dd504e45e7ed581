"""Facts the deploy reads from a host: one command, one parser each."""

from __future__ import annotations

import shlex

from pyinfra.api import FactBase


class HostPython(FactBase):
    """The host's `python3` as (version, machine), e.g. ("3.11", "x86_64"); None if absent."""

    def command(self):
        return ("command -v python3 >/dev/null && python3 -c "
                "'import sys, platform; print(\"%d.%d\" % sys.version_info[:2], platform.machine())'"
                " || true")

    def process(self, output):
        parts = " ".join(output).split()
        return tuple(parts) if len(parts) == 2 else None


class DirectoryFiles(FactBase):
    """Names of the files directly in a directory (empty when it does not exist)."""

    @staticmethod
    def default():
        return []

    def command(self, path):
        return f"ls -1A {shlex.quote(path)} 2>/dev/null || true"

    def process(self, output):
        return sorted(line.strip() for line in output if line.strip())


class FileText(FactBase):
    """A small file's text, stripped; None when the file does not exist."""

    def command(self, path):
        quoted = shlex.quote(path)
        return f"if [ -f {quoted} ]; then echo found; cat {quoted}; fi"

    def process(self, output):
        if not output or output[0] != "found":
            return None
        return "\n".join(output[1:]).strip()


class Deployment(FactBase):
    """A project's release state on a host, in one command.

    {"current": id or None, "previous": id or None, "releases": [ids], "venvs": [keys],
     "lock": {"run", "owner", "since"} or None, "serving": "<release> <config hash>" the
     app was last started with, "config": "<config hash>" of the files on disk now,
     "restarted_by_hand": True when `unit` started after the deploy last started it}
    """

    def default(self):
        return self.process([])  # nothing there yet

    def command(self, root, lock_dir, config_files=(), unit=None):
        r, lock = shlex.quote(root), shlex.quote(lock_dir)
        files = " ".join(shlex.quote(f) for f in config_files)
        by_hand = ""
        if unit:
            by_hand = (f"t=$(systemctl show -p ActiveEnterTimestamp --value {shlex.quote(unit)} 2>/dev/null); "
                       f"[ -n \"$t\" ] && [ -f {r}/.serving ] && "
                       f"[ $(date -d \"$t\" +%s) -gt $(stat -c %Y {r}/.serving) ] && echo by_hand=yes; ")
        return (f"{by_hand}echo serving=$(cat {r}/.serving 2>/dev/null); "
                f"echo config=$(cat {files} 2>/dev/null | sha256sum | cut -c1-16); "
                f"echo current=$(basename \"$(readlink {r}/current)\" 2>/dev/null); "
                f"echo previous=$(basename \"$(readlink {r}/previous)\" 2>/dev/null); "
                f"echo releases=$(cd {r}/releases 2>/dev/null && ls -1 | grep -v '^\\.' | tr '\\n' ' '); "
                f"echo venvs=$(ls -1 {r}/venvs 2>/dev/null | tr '\\n' ' '); "
                f"if [ -d {lock} ]; then echo lock=$(cat {lock}/run 2>/dev/null)"
                f"'|'$(cat {lock}/owner 2>/dev/null)'|'$(cat {lock}/since 2>/dev/null); fi")

    def process(self, output):
        values = dict(line.split("=", 1) for line in output if "=" in line)
        lock = None
        if "lock" in values:
            run, _, rest = values["lock"].partition("|")
            owner, _, since = rest.partition("|")
            lock = {"run": run, "owner": owner, "since": since}
        return {
            "current": values.get("current") or None,
            "previous": values.get("previous") or None,
            "releases": values.get("releases", "").split(),
            "venvs": values.get("venvs", "").split(),
            "lock": lock,
            "serving": values.get("serving") or None,
            "config": values.get("config") or None,
            "restarted_by_hand": values.get("by_hand") == "yes",
        }


class HealthAnswer(FactBase):
    """The HTTP status of GET path on the host's own port, or "none"."""

    def command(self, port, path, host_header):
        return (f"curl -s -o /dev/null -w '%{{http_code}}' -m 5 -H {shlex.quote('Host: ' + host_header)} "
                f"http://127.0.0.1:{int(port)}{shlex.quote(path)} || true")

    def process(self, output):
        return output[0].strip() if output and output[0].strip() not in ("", "000") else "none"


class LockHolder(FactBase):
    """The deploy lock at `path`: {"run", "owner"} of whoever holds it, or None if free."""

    def command(self, path):
        quoted = shlex.quote(path)
        return f"if [ -d {quoted} ]; then cat {quoted}/run {quoted}/owner 2>/dev/null; fi"

    def process(self, output):
        return {"run": output[0].strip(), "owner": output[1].strip() if len(output) > 1 else ""}


class Account(FactBase):
    """The app's group and user, from getent: {"group": gid or None, "user": {"uid",
    "gid", "home", "shell", "group"} or None}. One cheap lookup, not every account."""

    def command(self, user, group):
        u, g = shlex.quote(user), shlex.quote(group)
        return f"echo group=$(getent group {g}); echo user=$(getent passwd {u}); echo primary=$(id -gn {u} 2>/dev/null)"

    def default(self):
        return {"group": None, "user": None}

    def process(self, output):
        values = dict(line.split("=", 1) for line in output if "=" in line)
        group = values.get("group", "").split(":")
        user = values.get("user", "").split(":")
        return {
            "group": group[2] if len(group) > 2 else None,
            "user": {"uid": user[2], "gid": user[3], "home": user[5], "shell": user[6],
                     "group": values.get("primary", "")} if len(user) > 6 else None,
        }


class EnvFile(FactBase):
    """An .env file's owner, group and mode, and a salted digest of each line, never a value:
    {"owner": [user, group, mode], "lines": [[name, digest], ...]}; None when absent.

    Digests as `envfile.line_digests` makes them, so a secret is compared, not read back
    (fact outputs show with `-vvv`).
    """

    _SCRIPT = ("import hashlib, sys; s = sys.argv[2].encode(); d = open(sys.argv[1], 'rb').read(); "
               "[print(l.split(b'=', 1)[0].decode('ascii', 'replace') if b'=' in l and not l.startswith(b'#') "
               "else '#', hashlib.sha256(s + bytes(1) + l).hexdigest()[:32]) for l in d.split(bytes([10]))]")

    def command(self, path, salt):
        quoted = shlex.quote(path)
        return (f"if [ -f {quoted} ]; then stat -c '%U %G %a' {quoted} && "
                f"python3 -c {shlex.quote(self._SCRIPT)} {quoted} {shlex.quote(salt)}; fi")

    def process(self, output):
        if not output:
            return None
        return {"owner": output[0].split(), "lines": [line.rsplit(" ", 1) for line in output[1:]]}
