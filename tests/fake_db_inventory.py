"""Fake hosts for planning a deploy with a database server: one db host, two web hosts
(pyinfra's @fake connector; DJDEPLOY_FAKE_DB_SERVERS=2 adds a second db host)."""

import os

_host = {"fake_delay": 0, "fake_delay_jitter": 0, "fake_responses": {"python3 --version": ["Python 3.11.2", "x86_64"]}}

db = [(f"@fake/db-{n}", _host) for n in range(1, int(os.environ.get("DJDEPLOY_FAKE_DB_SERVERS", "1")) + 1)]
web = [("@fake/web-1", _host), ("@fake/web-2", _host)]
