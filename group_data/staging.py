# Staging hosts: an unprivileged port and a user of their own.
app_user = "staging"
port = 8080
