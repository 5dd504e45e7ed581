"""pip, to install the locked wheels into each virtualenv on the hosts.

A host's virtualenv is made without pip (`python3 -m venv --without-pip`), so a stock
Debian server needs no python3.N-venv (Debian moves ensurepip there) and no ensurepip
run: 2.1 s of CPU a host, most of a virtualenv's making. This pip, one pinned release
checked against its sha256 like every locked wheel, is unpacked once on each host and
installs the wheelhouse into the virtualenv from outside it; the virtualenv holds only
the app's locked packages, so nothing in it can install more.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from djdeploy.build import cache
from djdeploy.build.cache import BuildError, once, sha256_file

VERSION = "26.3"  # Python 3.10 and later: every Python djdeploy deploys to (locks.PYTHONS)
WHEEL = f"pip-{VERSION}-py3-none-any.whl"
SHA256 = "f3b60b20ffaadd4415ed7957212a38ac63fa4c5fa375bd0f4a797777940fad13"


@once
def pip_wheel() -> Path:
    """pip's wheel on this controller, downloaded once into the build cache and checked."""
    target = cache.CACHE / "installer" / WHEEL
    if target.exists() and sha256_file(target) == SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".download-", dir=target.parent))
    try:
        (work / "pip.txt").write_text(f"pip=={VERSION} --hash=sha256:{SHA256}\n")
        result = subprocess.run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet",
                                 "--no-deps", "--only-binary", ":all:", "--require-hashes", "-r", str(work / "pip.txt"),
                                 "-d", str(work)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        got = work / WHEEL
        if result.returncode != 0 or not got.exists() or sha256_file(got) != SHA256:
            said = (result.stdout.strip().splitlines() or ["no output"])[-1]
            raise BuildError(f"could not download {WHEEL} (what installs the wheels on the hosts) with its pinned "
                             f"sha256: {said}; check this machine's access to the package index and run again")
        got.replace(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
