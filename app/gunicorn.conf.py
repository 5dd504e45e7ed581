# gunicorn settings of the sample app; the run script passes bind and workers.
accesslog = "-"  # access log to stdout, so journald keeps it
errorlog = "-"
# No control socket: the app user has no writable home (gunicorn >= 25.1 makes one there).
control_socket_disable = True
