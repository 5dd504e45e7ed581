"""Speed-ups that use pyinfra's internals (see docs/architecture.md): facts in one command per host, and the bookkeeping that keeps its plan pyinfra's own."""
