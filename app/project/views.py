import hashlib
import os
import socket

from django.db import connection
from django.templatetags.static import static
from django.http import HttpResponse, JsonResponse


def home(request):
    return HttpResponse(
        f"<!doctype html><title>my_awesome_project</title>"
        f'<link rel="stylesheet" href="{static("site.css")}">'
        f"<h1>Hello from {socket.gethostname()}</h1><p>Django behind gunicorn, run by systemd.</p>"
    )


def healthz(request):
    """200 when the app can reach its database, 503 when it cannot."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM django_migrations")
            (applied,) = cursor.fetchone()
    except Exception as error:  # any database failure makes the host unhealthy
        return JsonResponse({"status": "error", "database": str(error)}, status=503)
    return JsonResponse({"status": "ok", "host": socket.gethostname(), "migrations": applied})


def env_digests(request):
    """SHA-256 of each variable named in APP_ENV_PROBE (comma-separated), as the app sees it.

    Lets a test check that values reach os.environ byte for byte without the app ever
    showing a value; empty unless the operator names variables.
    """
    names = [n for n in os.environ.get("APP_ENV_PROBE", "").split(",") if n]
    return JsonResponse({n: hashlib.sha256(os.environ[n].encode("utf-8", "surrogateescape")).hexdigest()
                         if n in os.environ else None for n in names})
