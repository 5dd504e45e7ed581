"""The operator's secrets the deploy itself uses: the database password (one per project,
the same on every app host, from which the database server's role and each app host's
DATABASE_URL are made) and the backup password (one per project: restic's repository key)."""

from __future__ import annotations

import re

from djdeploy.config.keys import BACKUP_PASSWORD, DB_PASSWORD

DB_SECRET = re.compile(r"^[\x21-\x7e]{16,}$")


def check_database_passwords(prepared: dict) -> list[str]:
    """Every app host of a project on PostgreSQL has the same, usable DATABASE_PASSWORD."""
    return _one_per(DB_PASSWORD, [(name, (s.db_host, s.db_name), f"database {s.db_name}", password)
                                  for name, (s, _, password) in prepared.items()
                                  if s.database == "postgresql" and password is not None])


def check_backup_passwords(passwords: dict) -> list[str]:
    """Every app host of a project with backups has the same, usable BACKUP_PASSWORD (one
    repository, one key): {host name: (settings, password)}."""
    return _one_per(BACKUP_PASSWORD, [(name, s.project, f"project {s.project}", password)
                                      for name, (s, password) in passwords.items()])


def _one_per(secret: str, entries: list) -> list[str]:
    """Each (host, scope, what the scope is called, password) usable, and one per scope."""
    problems, seen = [], {}
    for name, scope, called, password in entries:
        if not DB_SECRET.match(password):
            problems.append(f"host {name}: secret {secret} must be 16 or more printable ASCII characters, "
                            "no spaces: e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(24))'")
        first = seen.setdefault(scope, (name, password))
        if first[1] != password:
            problems.append(f"host {name}: secret {secret} differs from host {first[0]}'s, for the same {called}: "
                            "give every host of the project the same one")
    return problems
