"""Fake hosts for planning a site: a db host, a balancer, two web hosts and a worker-only
host (pyinfra's @fake connector)."""

_host = {"fake_delay": 0, "fake_delay_jitter": 0, "fake_responses": {"python3 --version": ["Python 3.11.2", "x86_64"]}}

db = [("@fake/db-1", _host)]
lb = [("@fake/lb-1", {**_host, "balancer_address": "10.0.0.9"})]
web = [("@fake/web-1", _host), ("@fake/web-2", _host)]
worker = [("@fake/worker-1", _host)]
