"""The journal of every process of the project, from every host, each line prefixed by
host and process (Kamal's `app logs`).

    .venv/bin/python logs.py                      # the last 20 lines of each host
    .venv/bin/python logs.py --since -1h          # since an hour ago
    .venv/bin/python logs.py web -f               # the web group, following (Ctrl-C stops)
"""

import sys

from djdeploy.run import remote

if __name__ == "__main__":
    sys.exit(remote.main("logs.py", sys.argv[1:]))
remote.refuse_pyinfra("logs.py")
