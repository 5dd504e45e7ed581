import os
import socket
import time

try:
    from django.tasks import task  # Django 6.0 and later
except ImportError:
    from django_tasks import task  # the same API before

from jobs.models import JobRun


@task()
def record(key: str, seconds: float = 0.0) -> str:
    """Work for `seconds`, then write one row saying which host and release ran it."""
    time.sleep(seconds)
    release = os.path.basename(os.environ.get("DJDEPLOY_RELEASE", "")) or "unknown"
    JobRun.objects.create(key=key, host=socket.gethostname(), release=release)
    return key
