"""Fake web hosts that each report a Python of their own (pyinfra's @fake connector):
DJDEPLOY_FAKE_PYTHONS="web-a=3.11.2,web-b=3.6.15" gives @fake/web-a and @fake/web-b."""

import os

web = [(f"@fake/{name}", {"fake_delay": 0, "fake_delay_jitter": 0,
                          "fake_responses": {"python3 --version": [f"Python {version}", "x86_64"]}})
       for name, version in (pair.split("=") for pair in os.environ["DJDEPLOY_FAKE_PYTHONS"].split(","))]
