"""Secrets on real hosts: byte-exact values through both .env parsers, and no secret in
any output, file or argv, while the dry run still says which keys change."""

import hashlib
import json
import os
import re
import subprocess
from secrets import token_urlsafe
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import PROJECT, PYINFRA, ROOT, TEST_FLEET, copy_project, http_get, results, run_pyinfra, wait_http_200

ENV = f"/srv/{PROJECT}/shared/.env"
# Every printable character, any script; tab too. Line breaks and other control
# characters are refused (tests/test_bad_input.py), as are Unicode noncharacters (systemd
# refuses them).
VALUE_CHARS = st.characters(blacklist_categories=("Cs", "Cc"), whitelist_characters="\t").filter(
    lambda c: (ord(c) & 0xFFFE) != 0xFFFE and not 0xFDD0 <= ord(c) <= 0xFDEF)
VALUES = st.lists(st.text(VALUE_CHARS, max_size=40), min_size=1, max_size=6)
NASTY = ["it's \"quoted\"", "$HOME ${PATH} $(id) `id`", "# not a comment", "back\\slash\\\\ \\n \\\"",
         "  spaces  around  ", "a=b=c", "ünïcødé ✓ 日本", "", "\t tab", "'", '"', "\\", "$", "`",
         "line\u2028separator\u2029paragraph\u0085next line"]  # Unicode's line breaks: one line to .env


def secrets_dir(tmp_path: Path, group_values: dict[str, dict[str, str]]) -> Path:
    folder = tmp_path / "secrets"
    folder.mkdir(parents=True, exist_ok=True)
    for group, values in group_values.items():
        lines = [f"{key} = {json.dumps(value, ensure_ascii=False)}" for key, value in values.items()]  # TOML too
        path = folder / f"{group}.toml"
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)
    return folder


def digests(values: dict[str, str]) -> dict[str, str]:
    return {k: hashlib.sha256(v.encode()).hexdigest() for k, v in values.items()}


@pytest.fixture(scope="module")
def host(fleet, deployed):
    """One web host for these tests, given back with a plain deploy at the end."""
    web = fleet.by_group("web")[-1]
    yield web
    assert run_pyinfra("-y", "--limit", web["address"]).returncode == 0


@settings(max_examples=5, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(values=VALUES)
@example(values=NASTY)
def test_values_arrive_byte_exact_through_systemd_and_the_run_script(fleet, host, tmp_path_factory, values):
    secrets = {f"PROBE_{i}": value for i, value in enumerate(values)}
    folder = secrets_dir(tmp_path_factory.mktemp("s"), {"web": secrets})
    data = json.dumps({"APP_ENV_PROBE": ",".join(secrets)})
    deploy = run_pyinfra("-y", "--limit", host["address"], "--data", f"app_env={data}",
                         env={"DJDEPLOY_SECRETS_DIR": str(folder)})
    assert deploy.returncode == 0, deploy.stdout[-3000:]
    # Through the running app (systemd's EnvironmentFile=, then the run script's `source`):
    status, body = wait_http_200(f"http://{host['address']}/env-digests", timeout=30)
    assert status == 200, body
    assert json.loads(body) == digests(secrets)
    # Through systemd's parser alone: a transient unit reading the same file.
    names = json.dumps(list(secrets))
    script = ("import hashlib, json, os; print(json.dumps({n: hashlib.sha256(os.environ[n].encode()).hexdigest() "
              f"for n in {names} if n in os.environ}}))")
    out = fleet.ssh(host, f"systemd-run --quiet --wait --pipe -p EnvironmentFile={ENV} "
                          f"/usr/bin/python3 -c {shlex_quote(script)}").stdout
    assert json.loads(out) == digests(secrets)
    # Through bash alone, as the run script and release.sh load it.
    out = fleet.ssh(host, f"env -i bash -c 'set -a; source {ENV}; set +a; exec /usr/bin/python3 -c \"$0\"' "
                          f"{shlex_quote(script)}").stdout
    assert json.loads(out) == digests(secrets)


def shlex_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def test_the_env_file_is_roots_0640_and_written_beside_itself(fleet, host):
    out = fleet.ssh(host, f"stat -c '%U %G %a' {ENV}; ls -A /srv/{PROJECT}/shared /tmp /var/tmp").stdout
    lines = out.splitlines()
    assert lines[0] == "root web 640"
    assert not [name for name in lines[1:] if name.startswith((".env.", "pyinfra-"))], out


# New each run (nothing from an earlier run or from this file can match), with characters
# that tempt a quoting bug into showing them.
SECRET_A = "s3cr3t-A-" + token_urlsafe(12) + "$`\"'#\\x"
SECRET_B = "s3cr3t-B-" + token_urlsafe(12) + " ünï"
SECRET_C = "s3cr3t-C-" + token_urlsafe(12) + "%&"


def no_secret_in(text: str, where: str, secrets=(SECRET_A, SECRET_B, SECRET_C)) -> None:
    for secret in secrets:
        for part in (secret, secret[9:], json.dumps(secret)[1:-1]):  # whole, the random tail, escaped
            assert part not in text, f"a secret shows in {where}"


def test_no_secret_in_any_output_file_or_argv_and_the_dry_run_names_the_keys(fleet, host, tmp_path, tmp_path_factory):
    folder = secrets_dir(tmp_path, {"web": {"API_TOKEN": SECRET_A, "MAIL_PASSWORD": SECRET_B}})
    env = {"DJDEPLOY_SECRETS_DIR": str(folder), "DJDEPLOY_SECRET_PAYMENT_KEY": SECRET_C}
    limit = ("--limit", host["address"])
    outputs = {}

    first = run_pyinfra("-y", "-vvv", *limit, env=env)
    assert first.returncode == 0, first.stdout[-3000:]
    outputs["a deploy with -vvv that sets them"] = first.stdout
    assert re.search(r"\.env: .*API_TOKEN: added.*PAYMENT_KEY: added", first.stdout)

    # One secret rotated: the dry run says which key and that the app restarts, nothing more.
    folder_2 = secrets_dir(tmp_path / "2", {"web": {"API_TOKEN": SECRET_A + "-rotated",
                                                    "MAIL_PASSWORD": SECRET_B}})
    env_2 = dict(env, DJDEPLOY_SECRETS_DIR=str(folder_2))
    for args in (["--dry"], ["--dry", "--diff"], ["--dry", "-v"], ["--dry", "-vv"], ["--dry", "-vvv"],
                 ["--dry", "--debug"], ["--dry", "--diff", "-vvv", "--debug"]):
        run = run_pyinfra(*args, *limit, env=env_2)
        assert run.returncode == 0, run.stdout[-3000:]
        outputs[" ".join(args)] = run.stdout
        assert re.search(r"\.env: API_TOKEN: changed \(restarts my_awesome_project\.service\)", run.stdout), \
            run.stdout[-3000:]
        assert "MAIL_PASSWORD: changed" not in run.stdout
        # The switch (a restart) is planned, behind its batch condition.
        assert re.search(rf"^\s*Switch to the release\s+.*1 \({re.escape(host['address'])}\)", run.stdout, re.M)
    no_secret_in(outputs["--dry -v"], "--dry -v", secrets=(SECRET_A + "-rotated",))

    inventory = subprocess.run([PYINFRA, "inventory.py", "debug-inventory"],
                               cwd=ROOT, env=dict(os.environ, DJDEPLOY_FLEET=TEST_FLEET, **env),
                               capture_output=True, text=True, timeout=120)
    assert inventory.returncode == 0, inventory.stderr[-2000:]
    outputs["debug-inventory"] = inventory.stdout + inventory.stderr

    # A failed run after .env changed: a release whose checks fail.
    broken = copy_project(tmp_path / "broken")
    settings_py = broken / "app" / "project" / "settings.py"
    settings_py.write_text(settings_py.read_text() + "\nraise RuntimeError('broken on purpose')\n")
    failed = run_pyinfra("-y", "-vv", *limit, env=env_2, cwd=broken)
    assert failed.returncode != 0 and "broken on purpose" in failed.stdout, failed.stdout[-3000:]
    outputs["a failed run"] = failed.stdout

    for where, text in outputs.items():
        no_secret_in(text + "", where, secrets=(SECRET_A, SECRET_A + "-rotated", SECRET_B, SECRET_C))

    # Files the deploy leaves on the controller: caches, logs, the project folder.
    from djdeploy.build import CACHE

    ours = str(tmp_path_factory.getbasetemp())  # where this test wrote the secrets files
    for place in (CACHE, ROOT, Path("/tmp"), Path("/var/tmp")):
        grep = subprocess.run(["grep", "-rlaF", "--exclude-dir=.venv", "--exclude-dir=.git", "-e", SECRET_A[9:],
                               "-e", SECRET_B[9:], "-e", SECRET_C[9:], str(place)],
                              capture_output=True, text=True, timeout=120)
        leaked = [f for f in grep.stdout.splitlines() if not f.startswith(ours)]
        assert leaked == [], f"a secret is in {leaked}"

    # The hosts: no process's argv, no file outside .env.
    out = fleet.ssh(host, "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '").stdout
    no_secret_in(out, "a process's argv on the host")
    found = fleet.ssh(host, f"grep -rlaF -e {shlex_quote(SECRET_C[9:])} /srv /tmp /var/tmp /etc /root "
                            f"2>/dev/null || true").stdout.split()
    # .env, and the .env.next the failed run left waiting for a switch (the next deploy
    # clears it), as closed as .env itself.
    assert sorted(found) == [ENV, ENV + ".next"]
    modes = fleet.ssh(host, f"stat -c '%U %G %a' {ENV} {ENV}.next").stdout.splitlines()
    assert modes[0] == modes[1] and modes[0].endswith(" 640") and modes[0].startswith("root "), modes
    # And the app has them, byte for byte.
    probe = json.dumps({"APP_ENV_PROBE": "API_TOKEN,MAIL_PASSWORD,PAYMENT_KEY"})
    assert run_pyinfra("-y", *limit, "--data", f"app_env={probe}", env=env).returncode == 0
    status, body = http_get(f"http://{host['address']}/env-digests")
    assert json.loads(body) == digests({"API_TOKEN": SECRET_A, "MAIL_PASSWORD": SECRET_B, "PAYMENT_KEY": SECRET_C})


def test_a_second_run_with_the_same_secrets_changes_nothing(fleet, host, tmp_path):
    # U+2028 and U+0085 too: split into lines on the way, they made every run rewrite .env.
    folder = secrets_dir(tmp_path, {"web": {"API_TOKEN": SECRET_A, "SEPARATED": "a\u2028b\u0085c"}})
    env = {"DJDEPLOY_SECRETS_DIR": str(folder)}
    assert run_pyinfra("-y", "--limit", host["address"], env=env).returncode == 0
    # The same release with new secrets: a restart, not a "switch" from a release to itself.
    logged = fleet.ssh(host, f"tail -n 1 /srv/{PROJECT}/revisions.log").stdout
    assert logged.rstrip().endswith("restarted (the files it reads at start changed)"), logged
    again = run_pyinfra("-y", "--limit", host["address"], env=env)
    assert results(again.stdout)["Grand total"]["changed"] == 0, again.stdout[-2000:]
    assert ".env:" not in again.stdout


def test_the_secret_key_is_made_once_and_kept_across_deploys_and_releases(fleet, host, tmp_path):
    from conftest import app_version

    before = fleet.ssh(host, f"sha256sum /srv/{PROJECT}/shared/secret_key").stdout
    project = app_version(tmp_path / "p", "keeps-its-key")
    assert run_pyinfra("-y", "--limit", host["address"], cwd=project).returncode == 0
    assert fleet.ssh(host, f"sha256sum /srv/{PROJECT}/shared/secret_key").stdout == before
    assert "keeps-its-key" in http_get(f"http://{host['address']}/")[1]
