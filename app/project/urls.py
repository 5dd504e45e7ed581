from django.urls import path

from notes.views import notes
from project import views

urlpatterns = [
    path("", views.home),
    path("healthz", views.healthz),
    path("notes", notes),
    path("env-digests", views.env_digests),
]
