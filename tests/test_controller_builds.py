"""The controller builds the wheelhouse and the release once per run, not once per host."""

import os
import subprocess

import pytest

from conftest import PYINFRA, ROOT

pytestmark = pytest.mark.index  # pip resolves and downloads from the package index


def deploy_fake(tmp_path, hosts=8):
    env = dict(os.environ, DJDEPLOY_BUILD_CACHE=str(tmp_path / "cache"), DJDEPLOY_FAKE_HOSTS=str(hosts))
    return subprocess.run([PYINFRA, "-y", "tests/fake_fleet.py", "deploy.py"], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)


def test_eight_hosts_one_build_then_none(tmp_path):
    first = deploy_fake(tmp_path)
    assert first.returncode == 0, first.stdout[-3000:]
    assert first.stdout.count("Building the wheelhouse") == 1
    assert first.stdout.count("Packing the release code") == 1
    assert first.stdout.count("Ready: deploy.py") == 8
    again = deploy_fake(tmp_path)  # same code, same requirements: from the local cache
    assert again.returncode == 0, again.stdout[-3000:]
    assert "Building the wheelhouse" not in again.stdout
    assert "Packing the release code" not in again.stdout
