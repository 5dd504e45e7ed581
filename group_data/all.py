# Defaults for every host; each group file below overrides what differs.
# The full list of keys, with their meaning, is djdeploy.settings.DEFAULTS.
project = "my_awesome_project"
app_path = "app"
requirements = "app/requirements.txt"
wsgi_module = "project.wsgi"
settings_module = "project.settings"
workers = 2
