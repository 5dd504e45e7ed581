# gunicorn settings the deploy gives every app (passed with --config by the run script).
# The app's own gunicorn.conf.py, if its project has one, is read after these and wins.
import os
import runpy

accesslog = "-"  # access and error logs to stdout/stderr: journald keeps them
errorlog = "-"
# The app user has no writable home, where gunicorn >= 25.1 would put its control socket.
control_socket_disable = True

_app_config = os.path.join(os.getcwd(), "gunicorn.conf.py")
if os.path.exists(_app_config):
    globals().update({k: v for k, v in runpy.run_path(_app_config).items() if not k.startswith("_")})
