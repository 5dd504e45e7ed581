"""The deploy's configuration: the data keys, a host's checked settings, what the app's own files say, and its secrets."""
