# gunicorn settings of the sample app; the run script passes bind and workers.
timeout = 30
graceful_timeout = 20
