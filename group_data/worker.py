# Worker hosts: no site (web = False: no gunicorn, no front, nothing on 80/443), only 2
# instances of the app's worker process type (its command is the app's: app/djdeploy.toml),
# which take the jobs any web host enqueues in the shared database.
app_user = "web"
port = 80
web = False
processes = {"worker": {"count": 2}}
