# Staging hosts: an unprivileged port and a user of their own.
app_user = "staging"
port = 8080
listen = "ambient"  # the seed's unit: gunicorn binds the port itself (AmbientCapabilities)
database = "sqlite"  # its own data, even when the inventory has a database server
