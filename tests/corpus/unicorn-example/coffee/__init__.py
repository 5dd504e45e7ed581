default_app_config = "coffee.apps.Config"
