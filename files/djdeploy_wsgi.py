"""The WSGI entry the deploy serves: the app's own WSGI application (DJDEPLOY_APP_WSGI), with
the deploy's health endpoint answered before the app's URL routing, and the files Django
leaves to a web server once DEBUG is off: STATIC_URL from STATIC_ROOT (unless the app
serves them itself, with WhiteNoise) and uploads, MEDIA_URL from MEDIA_ROOT.

GET /-/up, asked from the host itself by the health gate after each restart, answers 200
only if the app can serve: its databases answer, and GET / through the whole app (its
middleware, its Host check, its views) answers neither 400 nor a 5xx. Otherwise 503, with
the reason on one line. From any other address, /-/up is the app's own URL.
"""

import importlib
import io
import mimetypes
import os
from email.utils import formatdate
from pathlib import Path

UP_PATH = "/-/up"
# Asked on the host itself: over loopback (the last: a dual-stack socket), or on the app's unix
# socket, whose peer has no address (gunicorn gives ""): only root, the app and the front reach
# its folder, and the front always sends X-Forwarded-For, which the check below refuses.
LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1", "")

if os.environ.get("DJDEPLOY_APP_PACKAGE"):  # the deploy's settings import the release as that package
    importlib.import_module(os.environ["DJANGO_SETTINGS_MODULE"])
_module, _, _name = os.environ["DJDEPLOY_APP_WSGI"].partition(":")
app = getattr(importlib.import_module(_module), (_name or "application").removesuffix("()"))
if _name.endswith("()"):  # a factory, e.g. Django's own get_wsgi_application()
    app = app()


def _folders():
    """[(URL prefix, folder, is uploads)] this entry serves, from the app's settings."""
    from django.conf import settings

    folders = []
    static_url, static_root = getattr(settings, "STATIC_URL", None) or "", getattr(settings, "STATIC_ROOT", None)
    if static_root and static_url.startswith("/") and static_url.rstrip("/") and not any("whitenoise" in m for m in settings.MIDDLEWARE):
        folders.append((static_url.rstrip("/") + "/", Path(static_root), False))
    media_url, media_root = getattr(settings, "MEDIA_URL", None) or "", getattr(settings, "MEDIA_ROOT", None)
    if media_root and media_url.startswith("/") and media_url.rstrip("/"):
        folders.append((media_url.rstrip("/") + "/", Path(media_root), True))
    return folders


FOLDERS = _folders()
SERVE_FILES = os.environ.get("DJDEPLOY_SERVE_FILES", "1") == "1"  # data: serve_files


def _file(environ, start_response):
    """A file of FOLDERS for GET/HEAD of its URL, or None (then the app answers)."""
    path = environ.get("PATH_INFO", "")
    if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
        return None
    for prefix, folder, uploads in FOLDERS:
        if not path.startswith(prefix):
            continue
        # PATH_INFO is decoded already, as latin-1 (PEP 3333): the file name's own bytes.
        relative = path[len(prefix):].encode("latin-1").decode("utf-8", "surrogateescape")
        if not relative or "\0" in relative or any(part in ("..", "") for part in relative.split("/")):
            return None
        try:
            root = folder.resolve()
            target = (root / relative).resolve()
            if root not in target.parents or not target.is_file():  # no way out, by .. or a link
                return None
            handle = open(target, "rb")
            stat = os.fstat(handle.fileno())
        except OSError:
            return None
        kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        headers = [("Content-Type", kind), ("Content-Length", str(stat.st_size)),
                   ("Last-Modified", formatdate(stat.st_mtime, usegmt=True)), ("X-Content-Type-Options", "nosniff")]
        if uploads:  # a user's file: never run as a page of the site, never kept by a shared cache
            headers += [("Content-Security-Policy", "default-src 'none'; sandbox"), ("Cache-Control", "private, no-cache")]
        else:
            headers.append(("Cache-Control", "public, max-age=3600"))
        start_response("200 OK", headers)
        if environ["REQUEST_METHOD"] == "HEAD":
            handle.close()
            return [b""]
        wrapper = environ.get("wsgi.file_wrapper")
        return wrapper(handle, 65536) if wrapper else iter(lambda: handle.read(65536), b"")
    return None


def _databases():
    """None if every database answers, else why not, in one line."""
    from django.db import connections

    for alias in connections:
        try:
            connections[alias].ensure_connection()
        except Exception as error:  # noqa: BLE001 - any failure is the answer
            name = connections[alias].settings_dict.get("NAME")
            return f"database {alias} ({name}): {type(error).__name__}: {error}".replace("\n", " ")
        finally:
            connections[alias].close()
    return None


def _home(environ):
    """GET / through the app, with the health request's Host header: (status, first line)."""
    inner = dict(environ, PATH_INFO="/", QUERY_STRING="", REQUEST_METHOD="GET", CONTENT_LENGTH="0")
    inner["wsgi.input"] = io.BytesIO(b"")
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"] = status
        return lambda data: None

    body = app(inner, start_response)
    try:
        for _ in body:
            pass
    finally:
        if hasattr(body, "close"):
            body.close()
    return seen.get("status", "no status")


def _host_refused(host):
    """Whether Django refuses this Host header (ALLOWED_HOSTS), as its requests would."""
    from django.conf import settings
    from django.http.request import split_domain_port, validate_host

    allowed = settings.ALLOWED_HOSTS or ([".localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else [])
    domain, _ = split_domain_port(host)
    return not domain or not validate_host(domain, allowed)


def _up(environ):
    host = environ.get("HTTP_HOST", "")
    why = _databases()
    if why is None and _host_refused(host):
        why = (f"Host: {host} is not in the app's ALLOWED_HOSTS, so Django refuses it (DisallowedHost): "
               "add it to allowed_hosts, or set health_host")
    if why is None:
        status = _home(environ)
        code = status.split(" ", 1)[0]
        if code == "400":
            why = (f"GET / with Host: {host} answered {status}: Django refused the Host header "
                   "(DisallowedHost): add it to allowed_hosts, or set health_host")
        elif code.startswith("5") or not code.isdigit():
            why = f"GET / with Host: {host} answered {status}: the app's error is in its journal"
    return ("200 OK", b"ok\n") if why is None else ("503 Service Unavailable", why.encode() + b"\n")


def application(environ, start_response):
    if (environ.get("PATH_INFO") == UP_PATH and environ.get("REMOTE_ADDR") in LOOPBACK
            and not ({"HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED"} & environ.keys())):  # not via a local proxy
        status, body = _up(environ)
        start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                                ("Content-Length", str(len(body))), ("Cache-Control", "no-store")])
        return [body]
    if environ.get("REMOTE_ADDR") == "":  # on the app's unix socket: the front, which says who asked, or the host
        forwarded = environ.get("HTTP_X_FORWARDED_FOR", "").rsplit(",", 1)[-1].strip()
        environ["REMOTE_ADDR"] = forwarded or "127.0.0.1"
    served = _file(environ, start_response) if SERVE_FILES else None
    return served if served is not None else app(environ, start_response)
