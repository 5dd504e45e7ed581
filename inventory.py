"""The hosts: your servers from servers.toml, or else the local fleet (`make fleet-up`).

See djdeploy/inventory.py for the servers.toml format; nothing here needs editing.
"""

from pathlib import Path

from djdeploy.inventory import load

globals().update(load(Path(__file__).resolve().parent))
