# Defaults for every host; each group file below overrides what differs.
# What the fleet decides lives here; what the app needs travels with the app, in
# djdeploy.toml beside its manage.py (app/djdeploy.toml for the sample).
# The full list of keys, with their meaning, is docs/configuration.md.
project = "my_awesome_project"
app_path = "app"  # the folder holding your manage.py
workers = 2
