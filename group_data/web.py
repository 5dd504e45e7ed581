# Production web hosts: port 80, held by systemd (listen = "socket", the default; "ambient" is the
# seed's unit, where gunicorn binds it through AmbientCapabilities).
app_user = "web"
port = 80
