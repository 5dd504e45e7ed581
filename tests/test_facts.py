"""Facts parsed from what a host answers (no host needed)."""

from djdeploy.ops.facts import Deployment, MissingPackages


def test_the_lock_owner_is_read_whole():
    output = ["lock=5f2c9a1e0b7d4c3a root@laptop pid 4242 2026-11-28T03:00:00Z"]
    assert Deployment().process(output)["lock"] == {
        "run": "5f2c9a1e0b7d4c3a", "owner": "root@laptop pid 4242", "since": "2026-11-28T03:00:00Z"}


def test_releases_are_release_folders_only():
    """An archive still being unpacked, or left by a failed release, is not a release."""
    output = ["releases:", "0123456789ab", "ba9876543210.tar", ".new-ba9876543210", "", "venvs:", "k-py311"]
    state = Deployment().process(output)
    assert state["releases"] == ["0123456789ab"] and state["venvs"] == ["k-py311"]


def test_the_current_releases_dependency_set():
    output = ["stat=current/venv 1700000000 'current/venv' -> '../../venvs/df689afd86d7-py311'"]
    assert Deployment().process(output)["venv"] == "df689afd86d7-py311"


def test_missing_packages():
    fact = MissingPackages()
    fact.command(packages=["python3.11-venv", "curl", "sudo"])
    output = ["python3.11-venv curl sudo", "ii  sudo", "rc  curl"]  # curl removed, config left
    assert fact.process(output) == ["python3.11-venv", "curl"]
    assert fact.process(["python3.11-venv curl sudo", "ii  sudo", "ii  curl", "ii  python3.11-venv"]) == []
    assert fact.default() == ["python3.11-venv", "curl", "sudo"]  # no answer: nothing is assumed there
