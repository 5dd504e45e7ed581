# Production web hosts: port 80, bound without root through AmbientCapabilities.
app_user = "web"
port = 80
