"""What the deploy does on a host: its operations and the facts they read."""
