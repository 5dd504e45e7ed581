# Worker hosts: the site as on web hosts, and beside it 2 instances of the app's worker
# process type (its command is the app's: app/djdeploy.toml), which take the jobs any web
# host enqueues in the shared database.
app_user = "web"
port = 80
processes = {"worker": {"count": 2}}
