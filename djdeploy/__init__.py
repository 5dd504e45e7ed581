"""Deploy a Django project to a fleet of Linux servers under systemd, with pyinfra."""
