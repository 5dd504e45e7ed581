"""A second, differently laid-out project: settings in shop/conf/, no gunicorn.conf.py."""

import os
from pathlib import Path

SECRET_KEY = Path(os.environ["DJANGO_SECRET_KEY_FILE"]).read_text().strip()
DEBUG = False
ALLOWED_HOSTS = os.environ["DJANGO_ALLOWED_HOSTS"].split(",")
INSTALLED_APPS = ["django.contrib.contenttypes"]
ROOT_URLCONF = "shop.routes"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["DJANGO_DB_PATH"]}}
USE_TZ = True
