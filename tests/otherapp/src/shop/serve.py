"""WSGI entry point of the second project (not named wsgi.py on purpose)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.conf.production")
app = get_wsgi_application()
