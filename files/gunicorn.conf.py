# gunicorn settings the deploy gives every app (passed with --config by the run script).
# The app's own gunicorn.conf.py, if its project has one, is read after these and wins.
import os
import runpy

accesslog = "-"  # access and error logs to stdout/stderr: journald keeps them
errorlog = "-"
# The app user has no writable home, where gunicorn >= 25.1 would put its control socket.
control_socket_disable = True


def _chown_if_needed(path, uid, gid):
    """gunicorn chowns the unix socket it binds (the seed's ambient mode) to its own user even
    when it is theirs already; the app's sandbox denies chown (SystemCallFilter=~@privileged),
    which made the bind fail. Only an ownership that differs is changed."""
    stat = os.stat(path)
    if (stat.st_uid, stat.st_gid) != (uid, gid):
        _gunicorn_chown(path, uid, gid)


try:
    import gunicorn.util as _gunicorn_util

    _gunicorn_chown = _gunicorn_util.chown
    _gunicorn_util.chown = _chown_if_needed
except (ImportError, AttributeError):  # a gunicorn without it binds as it always did
    pass

_app_config = os.path.join(os.getcwd(), "gunicorn.conf.py")
if os.path.exists(_app_config):
    globals().update({k: v for k, v in runpy.run_path(_app_config).items() if not k.startswith("_")})
