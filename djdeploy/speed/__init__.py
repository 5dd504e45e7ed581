"""Speed-ups that use pyinfra's internals (see docs/architecture.md): a host's facts in one
command (factcache, synth), and pyinfra's per-operation bookkeeping made cheap, with the
same results (bookkeeping).

Only djdeploy.speed_up and djdeploy.inventory import them, each when djdeploy.SPEED is on:
DJDEPLOY_SPEED=off runs plain pyinfra, and nothing here is imported. The fast tests pass
both ways (CI runs them both ways).
"""
