"""Fake hosts for planning the deploy without any server (pyinfra's @fake connector)."""

_host = {
    "fake_delay": 0,
    "fake_delay_jitter": 0,
    "fake_responses": {
        "python3 --version": ["Python 3.11.2", "x86_64"],
    },
}

web = [("@fake/web-1", _host), ("@fake/web-2", _host)]
staging = [("@fake/staging-1", _host)]
