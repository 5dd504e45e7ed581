"""Speed-ups that use pyinfra's internals (see docs/architecture.md): a host's facts in one
command (factcache, synth), and pyinfra's per-operation bookkeeping made cheap, with the
same results (bookkeeping).

DJDEPLOY_SPEED=off runs plain pyinfra: none of them is installed. The fast tests pass
both ways (CI runs them both ways).
"""

import os

ENABLED = os.environ.get("DJDEPLOY_SPEED", "on").lower() != "off"
