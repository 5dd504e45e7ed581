"""Test tooling: the local fleet of Debian hosts (hosts), a load generator (load), and each host's HTTP answer (answers)."""
