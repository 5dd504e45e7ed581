from django.db import models


class JobRun(models.Model):
    """One run of a job (jobs.tasks.record): a job run twice would have two rows."""

    key = models.CharField(max_length=100, db_index=True)
    host = models.CharField(max_length=100)
    release = models.CharField(max_length=100)
    finished = models.DateTimeField(auto_now_add=True)
