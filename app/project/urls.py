from django.urls import path

from jobs.views import jobs
from notes.views import files, notes
from project import views

urlpatterns = [
    path("", views.home),
    path("healthz", views.healthz),
    path("notes", notes),
    path("files", files),
    path("jobs", jobs),
    path("env-digests", views.env_digests),
]
