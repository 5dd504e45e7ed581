"""Settings of the sample project, all read from the environment (.env on the host)."""

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent


def _secret_key() -> str:
    # The deploy generates the key on the host at first deploy and keeps it in a file.
    if "DJANGO_SECRET_KEY" in os.environ:
        return os.environ["DJANGO_SECRET_KEY"]
    key_file = os.environ.get("DJANGO_SECRET_KEY_FILE")
    if key_file:
        return Path(key_file).read_text().strip()
    return "insecure-development-key"


SECRET_KEY = _secret_key()
DEBUG = os.environ.get("DJANGO_DEBUG", "false").lower() == "true"
ALLOWED_HOSTS = [h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1").split(",") if h]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.staticfiles",
    "notes",
    "jobs",
    "django_tasks",
    "django_tasks_db",
]
# A task queue in the database the app already has (django-tasks-db: Django's tasks API,
# worked by `manage.py db_worker`, a process type in data).
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files without nginx
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
# Sessions in a cookie signed with SECRET_KEY: any host of a site reads them when all share it.
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"
TEMPLATES = []


def _database() -> dict:
    # DATABASE_URL (postgres://user:password@host:port/name): the shared PostgreSQL of a
    # fleet. Without it, SQLite in the host's data folder.
    url = os.environ.get("DATABASE_URL")
    if not url:
        return {"ENGINE": "django.db.backends.sqlite3",
                "NAME": os.environ.get("DJANGO_DB_PATH", str(BASE_DIR / "db.sqlite3"))}
    parts = urlsplit(url)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or 5432),
        "CONN_HEALTH_CHECKS": True,  # a connection dropped by a database restart is replaced
        "CONN_MAX_AGE": 60,
    }


DATABASES = {"default": _database()}

USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "static"  # inside the release: collectstatic runs before it serves
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},  # uploads, in MEDIA_ROOT
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
STATICFILES_DIRS = [BASE_DIR / "assets"]

# Served over plain HTTP by the demo fleet; turn these on behind TLS.
SECURE_SSL_REDIRECT = os.environ.get("DJANGO_SECURE_SSL_REDIRECT", "false").lower() == "true"
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE_SSL_REDIRECT
X_FRAME_OPTIONS = "DENY"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "INFO"},
}
