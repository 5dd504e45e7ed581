# Defaults for every host; each group file below overrides what differs.
# The full list of keys, with their meaning, is docs/configuration.md.
project = "my_awesome_project"
app_path = "app"
requirements = "app/requirements.txt"  # settings_module and wsgi_module: found from app/manage.py
health_path = "/healthz"  # the app's own health check (it reads the database)
workers = 2
