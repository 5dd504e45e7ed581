"""Print each host's HTTP answer, asked from this controller: `make demo` ends with it.

    python -m fleet.answers [inventory.py] [path]
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

from pyinfra.api import State
from pyinfra.context import ctx_state
from pyinfra_cli.inventory import make_inventory


def host_urls(inventory_file: str = "inventory.py", path: str = "/") -> list[tuple[str, str]]:
    """(host name, URL of `path` at the host's port) for every host, data resolved by pyinfra."""
    ctx_state.set(State())  # pyinfra reads inventory files inside a state context
    inventory = make_inventory(inventory_file, cwd=".")
    return [(host.name, f"http://{host.name}:{host.data.port}{path}") for host in inventory]


def answer(url: str, timeout: float = 5) -> tuple[int | None, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read(300).decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read(300).decode(errors="replace")
    except (OSError, urllib.error.URLError) as error:
        return None, str(getattr(error, "reason", error))


def main(argv: list[str]) -> int:
    inventory_file = argv[0] if argv else "inventory.py"
    path = argv[1] if len(argv) > 1 else "/"
    failed = 0
    for name, url in host_urls(inventory_file, path):
        status, body = answer(url)
        failed += status != 200
        print(f"{url:34} {status or 'no answer'}  {' '.join(body.split())[:90]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
