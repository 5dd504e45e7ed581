from django.urls import path

from jobs.views import jobs
from notes.views import files, notes, session
from project import views

urlpatterns = [
    path("", views.home),
    path("healthz", views.healthz),
    path("notes", notes),
    path("files", files),
    path("session", session),
    path("jobs", jobs),
    path("env-digests", views.env_digests),
]
