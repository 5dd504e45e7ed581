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


class TreeHash(FactBase):
    """sha256 of a directory's files (paths and contents, caches left out); None if absent.

    Matches build.tree_hash on the controller, so a hand-edited file shows up as drift.
    """

    def command(self, path):
        quoted = shlex.quote(path)
        return (f"if [ -d {quoted} ]; then cd {quoted} && find . -type f ! -path '*/__pycache__/*' "
                "-print0 | LC_ALL=C sort -z | xargs -0r sha256sum | sha256sum | cut -d' ' -f1; fi")

    def process(self, output):
        return output[0].strip() if output else None


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


class MigrationsPending(FactBase):
    """True when `manage.py migrate --check` says migrations are unapplied (or cannot tell)."""

    def command(self, root, code_dir, user):
        script = (f"set -a; . {shlex.quote(root)}/.env; set +a; cd {shlex.quote(code_dir)} && "
                  'exec "$VIRTUAL_ENV/bin/python" manage.py migrate --check')
        return (f"runuser -u {shlex.quote(user)} -- bash -c {shlex.quote(script)} >/dev/null 2>&1 "
                "&& echo applied || echo pending")

    def process(self, output):
        return "applied" not in output
