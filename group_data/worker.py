# Worker hosts: the site as on web hosts, and beside it the task queue's workers (a process
# type), which take the jobs any web host enqueues in the shared database: Django's tasks
# API stored in the database (django-tasks-db), whose worker stops at SIGTERM once the job
# it runs is done, which stop_timeout leaves it time for.
app_user = "web"
port = 80
processes = {"worker": {"command": "python manage.py db_worker --no-startup-delay", "count": 2, "stop_timeout": 60}}
# Finished jobs' results pruned each night, on one worker host.
timers = {"prune-tasks": {"command": "prune_db_task_results --min-age-days 7", "on_calendar": "daily"}}
