from django.db import models


class Note(models.Model):
    """A row written through one web host and read through any other."""

    text = models.CharField(max_length=200)
    written_by = models.CharField(max_length=100)
    created = models.DateTimeField(auto_now_add=True)
