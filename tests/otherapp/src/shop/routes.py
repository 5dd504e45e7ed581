import os

from django.db import connection
from django.http import HttpResponse
from django.urls import path


def storefront(request):
    return HttpResponse(f"shop says {os.environ.get('SHOP_GREETING', '(no greeting)')}")


def health(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM django_migrations")
    return HttpResponse("ok")


urlpatterns = [path("", storefront), path("up", health)]
