# Load balancers: the site's name (and its HTTPS, by ACME, when a domain is set) on the
# front, then HAProxy over the project's web hosts, each drained while it switches.
balancer = True
port = 80
