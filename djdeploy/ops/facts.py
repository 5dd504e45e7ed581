"""Facts the deploy reads from a host: one command, one parser each."""

from __future__ import annotations

import json

from pyinfra.api import FactBase

from djdeploy.config.keys import UNITS
from djdeploy.shell import shell_quote


class HostPython(FactBase):
    """The host's `python3` as (version, machine), e.g. ("3.11", "x86_64"); None if absent."""

    def command(self):
        # --version answers before the interpreter starts up: a millisecond, not ten
        return "command -v python3 >/dev/null && python3 --version && uname -m || true"

    def process(self, output):
        parts = " ".join(output).split()  # Python 3.11.2 x86_64
        if len(parts) != 3 or parts[0] != "Python":
            return None
        return ".".join(parts[1].split(".")[:2]), parts[2]


class MissingPackages(FactBase):
    """Which of `packages` (Debian package names) are not installed, in the order given.
    No answer at all counts as none installed (never as "nothing to do")."""

    packages: list = []

    def command(self, packages):
        self.packages = list(packages)
        names = " ".join(shell_quote(p) for p in packages)
        # One process: the names asked, then the state of those dpkg knows ("ii" installed).
        return f"echo {names}; dpkg-query -W -f='${{db:Status-Abbrev}} ${{Package}}\\n' {names} 2>/dev/null; true"

    def default(self):
        return list(self.packages)

    def process(self, output):
        wanted = self.packages or (output[0].split() if output else [])
        # The second letter is the package's state: "i" installed (held or not).
        installed = {line.split()[-1] for line in output[1:] if len(line) > 1 and line[1] == "i"}
        return [name for name in wanted if name not in installed]


class SocketListens(FactBase):
    """Where a socket unit listens (["/srv/shop/socket/gunicorn.sock"], ["127.0.0.1:8000"] as deployed
    before); [] when it is not loaded or listens
    nowhere. What is bound, while its service runs: the addresses both systemd and the
    service's main process hold (systemd's own `Listen` shows the file's address as soon
    as it is reloaded, while the old socket still listens, e.g. after a run stopped
    between the two); else systemd's `Listen`."""

    @staticmethod
    def default():
        return []

    def command(self, unit, service):
        u, s = shell_quote(unit), shell_quote(service)
        return (f"pid=$(systemctl show -P MainPID {s} 2>/dev/null); bound=; "
                f"[ \"${{pid:-0}}\" -gt 0 ] 2>/dev/null && bound=$({{ ss -Hltnp; ss -Hlxp; }} 2>/dev/null | grep -F \"pid=$pid,\" "
                "| grep -F '\"systemd\",pid=1,' | awk '{print ($1 == \"u_str\" ? $5 : $4) \" (Stream)\"}'); "
                f"if [ -n \"$bound\" ]; then echo \"$bound\"; else systemctl show -p Listen --value {u} 2>/dev/null; fi; true")

    def process(self, output):
        return sorted(line.split()[0] for line in output if line.strip())


class FrontApplied(FactBase):
    """[digest Caddy last took, digest of the files in place now] of the front's files
    (its unit's drop-in `dropin`, and in `front_dir`: the Caddyfile, sites/, certs/; as
    files/front.sh digests them); [] when Caddy never took any yet."""

    @staticmethod
    def default():
        return []

    def command(self, front_dir, dropin):
        d = shell_quote(front_dir)
        return (f"export LC_ALL=C; [ -e {d}/.applied ] || exit 0; cat {d}/.applied; "
                f"cat {shell_quote(dropin)} {d}/Caddyfile {d}/sites/*.caddy {d}/certs/* 2>/dev/null | sha1sum | cut -c1-40")

    def process(self, output):
        return [line.strip() for line in output if line.strip()]


class NamedAcl(FactBase):
    """A path's ACL entries for named users and groups (["user:caddy:--x"]); [] when it has
    none, does not exist, or getfacl is not installed yet."""

    @staticmethod
    def default():
        return []

    def command(self, path):
        return f"getfacl -cp -- {shell_quote(path)} 2>/dev/null || true"

    def process(self, output):
        return sorted(line.split("#")[0].strip() for line in output
                      if line.count(":") == 2 and line.split(":")[1] and line.split(":")[0] in ("user", "group"))


class ProjectProcessUnits(FactBase):
    """The process types' template units a project has on the host (their file names), found
    by the line the deploy writes in each: X-Djdeploy-Project=<project>."""

    @staticmethod
    def default():
        return []

    def command(self, project):
        return (f"grep -lxF {shell_quote('X-Djdeploy-Project=' + project)} {UNITS}/*@.service "
                "2>/dev/null || true")

    def process(self, output):
        return sorted(line.strip().rsplit("/", 1)[-1] for line in output if line.strip())


class UnitStates(FactBase):
    """{unit: {"state": ActiveState, "since": ActiveEnterTimestamp (Unix s, or None),
    "restarts": NRestarts}} of the units named, as systemctl shows them."""

    @staticmethod
    def default():
        return {}

    def command(self, units):
        names = " ".join(shell_quote(u) for u in units)
        return (f"systemctl show -p Id -p ActiveState -p ActiveEnterTimestamp -p NRestarts "
                f"--timestamp=unix -- {names} 2>/dev/null || true")

    def process(self, output):
        states, current = {}, {}
        for line in [*output, ""]:
            if "=" in line:
                key, value = line.split("=", 1)
                current[key] = value
            elif current:
                since = current.get("ActiveEnterTimestamp", "").lstrip("@")
                states[current.get("Id", "?")] = {
                    "state": current.get("ActiveState", "unknown"),
                    "since": int(since) if since.isdigit() and since != "0" else None,
                    "restarts": int(current.get("NRestarts") or 0)}
                current = {}
        return states


class DirectoryFiles(FactBase):
    """Names of the files directly in a directory (empty when it does not exist)."""

    @staticmethod
    def default():
        return []

    def command(self, path):
        return f"ls -1A {shell_quote(path)} 2>/dev/null || true"

    def process(self, output):
        return sorted(line.strip() for line in output if line.strip())


class PathOwner(FactBase):
    """A path's owner, group and mode as `stat` gives them ("web caddy 2750", setgid and
    sticky bits included: pyinfra's own facts drop them); None when it does not exist."""

    def command(self, path):
        return f"stat -c '%U %G %a' {shell_quote(path)} 2>/dev/null || true"

    def process(self, output):
        return output[0].strip() if output and output[0].strip() else None


class FileText(FactBase):
    """A small file's text, stripped; None when the file does not exist."""

    def command(self, path):
        quoted = shell_quote(path)
        return f"if [ -f {quoted} ]; then echo found; cat {quoted}; fi"

    def process(self, output):
        if not output or output[0] != "found":
            return None
        return "\n".join(output[1:]).strip()


class Deployment(FactBase):
    """A project's release state on a host, in one command.

    {"current": id or None, "previous": id or None, "venv": current's virtualenv key (the hash
     of its locked dependencies) or None, "releases": [ids], "serving": "<release> <config
     hash>" the app was last started with,
     "config": "<config hash>" of the files on disk now, "leftovers": [paths] of files a
     stopped run left waiting for a switch (.next, .prev, .next.part)}
    """

    def default(self):
        return self.process([])  # nothing there yet

    def command(self, root, config_files=()):
        # Few processes (a no-op on a busy fleet pays for each): one stat for the links, one
        # ls for the releases; parsed here. The lock is LockHolder's.
        r = shell_quote(root)
        files = " ".join(shell_quote(f) for f in config_files)
        waiting = " ".join(shell_quote(f + end) for f in config_files for end in (".next", ".prev", ".next.part"))
        waiting += "".join(f" {shell_quote(f)}.next.??????" for f in config_files)  # a cut .env upload (its mktemp)
        return (f"cd {r} 2>/dev/null || exit 0; "
                f"stat -c 'stat=%n %N' current previous current/venv 2>/dev/null; "
                f"echo serving=$(cat .serving 2>/dev/null); "
                f"echo config=$(cat {files} 2>/dev/null | sha256sum); "
                f"echo leftovers=$(ls -d {waiting} 2>/dev/null); "
                f"echo releases:; ls -1A releases 2>/dev/null")

    def process(self, output):
        values, links, listed, folder = {}, {}, {"releases": []}, None
        for line in output:
            if line.startswith("stat="):
                name, shown = line[5:].split(" ", 1)
                if " -> " in shown:
                    links[name] = shown.split(" -> ", 1)[1].strip("'\"").rsplit("/", 1)[-1]
            elif line.endswith(":") and line[:-1] in listed:
                folder = line[:-1]
            elif "=" in line and not (folder and line.startswith(".")):
                key, value = line.split("=", 1)
                values[key] = value
            elif folder and line and not line.startswith(".") and not line.endswith(".tar"):
                listed[folder].append(line)  # not an archive still being unpacked
        return {
            "current": links.get("current"),
            "previous": links.get("previous"),
            "venv": links.get("current/venv"),  # the locked dependency set current runs in
            "releases": listed["releases"],
            "serving": values.get("serving") or None,
            "config": values.get("config", "")[:16] or None,
            "leftovers": values.get("leftovers", "").split(),
        }


class JobTimers(FactBase):
    """The project's scheduled jobs on a host: {name: {"last": Unix time or None, "next":
    Unix time or None, "result": the last run's result ("success", "exit-code", ...), or
    "running"}}."""

    def command(self, project):
        pattern = shell_quote(f"{project}-job-*")
        prefix = shell_quote(f"{project}-job-")  # each service by name: a glob finds only loaded units
        return (f"echo prefix={prefix}; "
                f"systemctl list-timers --all --no-pager -o json {pattern}.timer 2>/dev/null || echo '[]'; "
                f"units=$(ls -1 {UNITS} | grep -F -- {prefix} | grep '[.]service$'); "
                "[ -z \"$units\" ] || systemctl show -p Id -p Result -p ActiveState $units 2>/dev/null || true")

    def process(self, output):
        listed, results, prefix, block = [], {}, "", {}

        def ended(block):
            running = block.get("ActiveState") in ("activating", "active", "deactivating")
            results[block.get("Id")] = "running" if running else block.get("Result", "?")

        for line in output:
            key, _, value = line.partition("=")
            if key == "prefix":
                prefix = value
            elif line.startswith("["):
                listed = json.loads(line)
            elif value or line.endswith("="):  # systemctl show: a block per unit, its properties in its order
                if key in block:  # the next unit's (blank lines between blocks may be dropped)
                    ended(block)
                    block = {}
                block[key] = value
        if block:
            ended(block)
        jobs = {}
        for entry in listed:
            name = entry["unit"].removeprefix(prefix).removesuffix(".timer")
            jobs[name] = {"last": entry["last"] and entry["last"] // 1_000_000,
                          "next": entry["next"] and entry["next"] // 1_000_000,
                          "result": results.get(entry["activates"], "?")}
        return jobs


class HealthAnswer(FactBase):
    """The HTTP status of one GET of the health check, or "none": the host's release tool
    makes it (`release.sh health`), with the settings of the deploy's own gate (path, Host
    header, timeout), so status.py shows what the gate would see."""

    def command(self, tool, tool_env):
        quoted = shell_quote(tool)
        return f"if [ -x {quoted} ]; then {tool_env} {quoted} health 2>/dev/null || echo none; else echo none; fi"

    def process(self, output):
        return output[0].strip() if output and output[0].strip() not in ("", "000") else "none"


class LockHolder(FactBase):
    """The deploy lock at `path`: {"run", "owner", "since"} of whoever holds it (each a line
    of its own file; the owner has spaces), or None if free. A lock folder a killed deploy
    left empty is held ("" each). The one fact that reads the lock."""

    def command(self, path):
        quoted = shell_quote(path)
        return f"if [ -d {quoted} ]; then echo held; cat {quoted}/run {quoted}/owner {quoted}/since 2>/dev/null || true; fi"

    def process(self, output):
        run, owner, since = ([line.strip() for line in output[1:]] + ["", "", ""])[:3]
        return {"run": run, "owner": owner, "since": since}


class Account(FactBase):
    """The app's group and user, from getent: {"group": gid or None, "user": {"uid",
    "gid", "home", "shell", "group"} or None}. One cheap lookup, not every account."""

    def command(self, user, group):
        u, g = shell_quote(user), shell_quote(group)
        # Told apart by shape: group lines have 4 fields, passwd lines 7, id -gn none.
        return f"getent group {g}; getent passwd {u}; id -gn {u} 2>/dev/null; true"

    def default(self):
        return {"group": None, "user": None}

    def process(self, output):
        fields = {len(line.split(":")): line.split(":") for line in output}
        group, user = fields.get(4, []), fields.get(7, [])
        return {
            "group": group[2] if group else None,
            "user": {"uid": user[2], "gid": user[3], "home": user[5], "shell": user[6],
                     "group": fields.get(1, [""])[0]} if user else None,
        }


class EnvFile(FactBase):
    """An .env file's owner, group and mode, and one salted digest of the whole file, never
    a value: {"owner": [user, group, mode], "digest": hex}; None when absent. Equal to
    `envfile.file_digest` of the wanted text when nothing changed (fact outputs show
    with `-vvv`: a secret is compared, not read back)."""

    def command(self, path, salt):
        quoted = shell_quote(path)
        return (f"if [ -f {quoted} ]; then stat -c '%U %G %a' {quoted} && "
                f"{{ printf '%s\\0' {shell_quote(salt)}; cat {quoted}; }} | sha256sum; fi")

    def process(self, output):
        if len(output) < 2:
            return None
        return {"owner": output[0].split(), "digest": output[1].split()[0]}


class SecretDigest(FactBase):
    """A secret file's salted digest, never its value (fact outputs show with `-vvv`):
    hex, or None when the file is absent."""

    def command(self, path, salt):
        quoted = shell_quote(path)
        return f"if [ -f {quoted} ]; then {{ printf '%s\\0' {shell_quote(salt)}; cat {quoted}; }} | sha256sum; fi"

    def process(self, output):
        return output[0].split()[0] if output and output[0].strip() else None


class EnvFileLines(FactBase):
    """A salted digest of each line of an .env file, by name: [[name, digest], ...] as
    `envfile.line_digests` makes them; asked only when the file differs, to name the keys
    that change."""

    _SCRIPT = ("import hashlib, sys; s = sys.argv[2].encode(); d = open(sys.argv[1], 'rb').read(); "
               "[print(l.split(b'=', 1)[0].decode('ascii', 'replace') if b'=' in l and not l.startswith(b'#') "
               "else '#', hashlib.sha256(s + bytes(1) + l).hexdigest()[:32]) for l in d.split(bytes([10]))]")

    def command(self, path, salt):
        quoted = shell_quote(path)
        return f"if [ -f {quoted} ]; then python3 -I -S -c {shell_quote(self._SCRIPT)} {quoted} {shell_quote(salt)}; fi"

    def process(self, output):
        return [line.rsplit(" ", 1) for line in output]


class BackupPlan(FactBase):
    """What `backup.sh restore SNAPSHOT` would replace, as the tool says it (restore.py's dry
    run): its lines, or the one line of why it cannot; None where the tool is not there yet."""

    def command(self, tool, snapshot):
        quoted = shell_quote(tool)
        return f"if [ -x {quoted} ]; then {quoted} plan {shell_quote(snapshot)} 2>&1 || true; fi"

    def process(self, output):
        return [line.rstrip() for line in output] or None


class MigrationsAhead(FactBase):
    """What a rollback to `release` meets: {"unknown": [app.name, ...], "known": {app: name}},
    the migrations the database has applied that the current release knows and `release`
    does not, and each such app's last one `release` knows ("zero": none); None if the
    releases could not say (release.sh migrations, run in each as the app user)."""

    def command(self, tool, tool_env, release):
        return f"{tool_env} {shell_quote(tool)} migrations {shell_quote(release)} 2>/dev/null && echo listed || true"

    def process(self, output):
        if "listed" not in output:  # (no output at all: pyinfra gives None without asking)
            return None
        seen = {"target": {"known": set(), "applied": set(), "leaf": {}}, "current": {"known": set()}}
        side = None
        for line in output:
            parts = line.split()
            if parts[:1] == ["in"] and len(parts) == 2 and parts[1] in seen:
                side = seen[parts[1]]
            elif side is not None and len(parts) == 2 and parts[0] in ("known", "applied") and parts[0] in side:
                side[parts[0]].add(parts[1])
            elif side is not None and len(parts) == 3 and parts[0] == "leaf" and "leaf" in side:
                side["leaf"][parts[1]] = parts[2]
        target, current = seen["target"], seen["current"]
        unknown = sorted((target["applied"] & current["known"]) - target["known"])
        apps = sorted({name.split(".", 1)[0] for name in unknown})
        return {"unknown": unknown, "known": {app: target["leaf"].get(app, "zero") for app in apps}}
