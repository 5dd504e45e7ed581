"""The database password: one secret per project, the same on every app host, from
which the database server's role and each app host's DATABASE_URL are made."""

from __future__ import annotations

import re

from djdeploy.config.keys import DB_PASSWORD

DB_SECRET = re.compile(r"^[\x21-\x7e]{16,}$")


def check_database_passwords(prepared: dict) -> list[str]:
    """Every app host of a project on PostgreSQL has the same, usable DATABASE_PASSWORD."""
    problems, seen = [], {}
    for name, (s, _, password) in prepared.items():
        if s.database != "postgresql":
            continue
        if password is None:
            continue
        if not DB_SECRET.match(password):
            problems.append(f"host {name}: secret {DB_PASSWORD} must be 16 or more printable ASCII characters, "
                            "no spaces: e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(24))'")
        first = seen.setdefault((s.db_host, s.db_name), (name, password))
        if first[1] != password:
            problems.append(f"host {name}: secret {DB_PASSWORD} differs from host {first[0]}'s, for the same "
                            f"database {s.db_name}: give every host of the project the same one")
    return problems

