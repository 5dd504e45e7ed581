default_app_config = "books.apps.Config"
