"""Run a management command in the current release of one host, or of every host of a
group, as the app user with the app's .env (Kamal's `app exec`, Heroku's `run`).

    .venv/bin/python exec.py 169.254.1.2 -- createsuperuser   # one host, in your terminal
    .venv/bin/python exec.py web -- clearsessions            # every host of the group
    .venv/bin/python exec.py all -- check --deploy

Output comes line by line, prefixed by host; the exit code is the command's. The words
after `--` go to manage.py as they are: no shell reads them.
"""

import sys

from djdeploy.run import remote

if __name__ == "__main__":
    sys.exit(remote.main("exec.py", sys.argv[1:]))
remote.refuse_pyinfra("exec.py")
