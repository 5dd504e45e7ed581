"""Where this controller keeps what it builds and learns between runs (DJDEPLOY_BUILD_CACHE)."""

import os
from pathlib import Path

CACHE = Path(os.environ.get("DJDEPLOY_BUILD_CACHE", Path.home() / ".cache" / "djdeploy"))
