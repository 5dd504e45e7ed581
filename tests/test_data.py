"""Group data resolves per group, and bad data is refused with one clear line."""

import os
from pathlib import Path

import pytest

from djdeploy.config.settings import parse
from djdeploy.errors import DataError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def inventory(monkeypatch):
    from pyinfra.api import State
    from pyinfra.context import ctx_state
    from pyinfra_cli.inventory import make_inventory

    monkeypatch.chdir(ROOT)
    ctx_state.set(State())
    return make_inventory("tests/fake_inventory.py", cwd=str(ROOT))


def test_each_group_gets_its_own_user_and_port(inventory):
    settings = {host.name: parse(host.name, host.data, host.groups) for host in inventory}
    assert {name: (s.user, s.port) for name, s in settings.items()} == {
        "@fake/web-1": ("web", 80),
        "@fake/web-2": ("web", 80),
        "@fake/staging-1": ("staging", 8080),
    }
    # all.py applies to every group.
    assert {s.project for s in settings.values()} == {"my_awesome_project"}
    assert {s.root for s in settings.values()} == {"/srv/my_awesome_project"}


def test_group_data_is_data_only():
    for path in (ROOT / "group_data").glob("*.py"):
        for line in path.read_text().splitlines():
            code = line.split("#", 1)[0].strip()
            assert not code or "=" in code and not code.startswith(("def ", "import ", "from ")), \
                f"{path.name}: {line!r} is not a plain assignment"


@pytest.mark.parametrize("data, message", [
    ({"port": 80}, "missing required data key 'app_user'"),
    ({"app_user": "web"}, "missing required data key 'port'"),
    ({"app_user": "web", "port": 0}, "port = 0: input should be greater than or equal to 1: a whole number"),
    ({"app_user": "web", "port": "80"}, "port = '80': input should be a valid integer"),
    ({"app_user": "web", "port": 22}, "port = 22: the host's SSH port"),
    ({"app_user": "web", "prot": 80, "port": 80}, "unknown data key 'prot': did you mean 'port'?"),
    ({"app_user": "web", "port": 80, "workers": "two"}, "workers = 'two': input should be a valid integer"),
    ({"app_user": "web", "port": 80, "listen": "sockets"}, "listen = 'sockets': input should be 'socket' or"),
    ({"app_user": "root", "port": 80}, "app_user = 'root': must be a lower-case system name, not root"),
    ({"app_user": "Web User", "port": 80}, "app_user = 'Web User'"),
    ({"app_user": "web", "port": 80, "project": "../etc"}, "project = '../etc': not a valid value: use letters"),
    ({"app_user": "web", "port": 80, "app_path": "nowhere"}, "app_path = 'nowhere': holds no manage.py"),
    ({"app_user": "web", "port": 80, "requirements": "nope.txt"}, "requirements file 'nope.txt'"),
    ({"app_user": "web", "port": 80, "srv": "srv"}, "srv = 'srv': not an absolute path"),
    ({"app_user": "web", "port": 80, "srv": "/opt/apps"}, "srv = '/opt/apps': outside /srv"),
    ({"app_user": "web", "port": 80, "app_env": {"A B": "x"}}, "app_env key 'A B'"),
    ({"app_user": "web", "port": 80, "app_env": {"A": "x\ny"}}, "app_env: A holds a line break"),
    ({"app_user": "web", "port": 80, "app_env": {"A": "x\ufffey"}}, "app_env: A holds U+FFFE"),
    ({"app_user": "web", "port": 80, "required_secrets": "API_KEY"}, "required_secrets = 'API_KEY': input should be a valid list"),
    ({"app_user": "web", "port": 80, "required_secrets": ["OK", "NOT-OK"]}, "required_secrets.1 = 'NOT-OK': not a valid value"),
    ({"app_user": "web", "port": True}, "port = True: input should be a valid integer"),
    ({"app_user": "web", "port": 80, "workers": 65}, "workers = 65: input should be less than or equal to 64"),
    ({"app_user": "web", "port": 80, "batch": 0}, "batch = 0: not a valid value: a count of hosts"),
    ({"app_user": "web", "port": 80, "batch": "all"}, "batch = 'all': not a valid value: a count of hosts"),
    ({"app_user": "web", "port": 80, "allow_outside_srv": 1}, "allow_outside_srv = 1: input should be a valid boolean"),
    ({"app_user": "web", "port": 80, "app_env": {"A": None}}, "app_env.A = None: input should be a valid string or number"),
    ({"app_user": "web", "port": 80, "check_level": "loud"}, "check_level = 'LOUD': input should be 'CRITICAL', 'ERROR', 'WARNING', 'INFO' or 'DEBUG'"),
    ({"app_user": "web", "port": 80, "database": "mysql"}, "database = 'mysql': input should be 'sqlite' or 'postgresql'"),
])
def test_bad_data_gets_one_line_naming_host_and_key(data, message, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(DataError) as error:
        parse("app1", data, ["web"])
    assert len(error.value.problems) == 1, error.value.problems
    text = error.value.problems[0]
    assert message in text
    assert text.startswith("host app1 (group web): ")
    assert "\n" not in text


def test_every_problem_is_listed_at_once(monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(DataError) as error:
        parse("app1", {"app_user": "root", "port": 70000, "wokers": 2, "listen": "x"}, ["web"])
    keys = sorted(p.split(": ")[1].split(" ")[0] for p in error.value.problems)
    assert len(error.value.problems) == 4, error.value.problems  # schema errors first, then the rest
    assert keys == ["app_user", "listen", "port", "unknown"]
    assert "did you mean 'workers'?" in " ".join(error.value.problems)


def test_outside_srv_is_allowed_when_asked(monkeypatch):
    monkeypatch.chdir(ROOT)
    s = parse("app1", {"app_user": "web", "port": 80, "srv": "/opt/apps", "allow_outside_srv": True}, ["web"])
    assert s.root == "/opt/apps/my_awesome_project"


def test_the_project_is_found_from_its_manage_py(monkeypatch):
    """No settings_module, wsgi_module or requirements in data: the app's own files say them."""
    monkeypatch.chdir(ROOT)
    s = parse("app1", {"app_user": "web", "port": 80, "app_path": "app"}, ["web"])
    assert (s.settings_module, s.wsgi_module, s.requirements) == (
        "project.settings", "project.wsgi", Path("app/requirements.txt"))


def test_a_settings_package_and_a_named_wsgi_application_are_found(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "site" / "conf" / "settings").mkdir(parents=True)
    (tmp_path / "site" / "manage.py").write_text(
        "import os\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'conf.settings')\n")
    (tmp_path / "site" / "conf" / "settings" / "__init__.py").write_text(
        "WSGI_APPLICATION = 'conf.serve.app'\n")
    (tmp_path / "site" / "requirements.txt").write_text("django\n")
    s = parse("app1", {"app_user": "web", "port": 80, "app_path": "site"}, ["web"])
    assert (s.settings_module, s.wsgi_module, s.requirements) == (
        "conf.settings", "conf.serve:app", Path("site/requirements.txt"))


def test_what_cannot_be_found_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "manage.py").write_text("print('no settings named here')\n")
    with pytest.raises(DataError) as error:
        parse("app1", {"app_user": "web", "port": 80, "app_path": "site"}, ["web"])
    problems = error.value.problems
    assert any("settings_module is not set and could not be found from site/manage.py" in p for p in problems)
    assert any("requirements is not set" in p for p in problems)


def test_overrides_can_be_kept_as_the_app_has_them(monkeypatch):
    monkeypatch.chdir(ROOT)
    s = parse("app1", {"app_user": "web", "port": 80, "keep_app_settings": ["LOGGING", "DEBUG"]}, ["web"])
    assert "LOGGING" not in s.overrides and "DEBUG" not in s.overrides and "ALLOWED_HOSTS" in s.overrides
    with pytest.raises(DataError) as error:
        parse("app1", {"app_user": "web", "port": 80, "keep_app_settings": ["DEBUGG"]}, ["web"])
    assert "keep_app_settings.0 = 'DEBUGG'" in error.value.problems[0]


def test_one_port_for_two_projects_on_one_machine_is_refused(monkeypatch):
    """Two inventory entries that reach the same machine (ssh_hostname), two projects, one port."""
    from types import SimpleNamespace

    from djdeploy import preflight
    from djdeploy.errors import DeployError

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(preflight, "check_templates", lambda host, s, secrets: [])
    monkeypatch.setattr(preflight, "_secrets", lambda host, s: ({}, None))
    class Host(SimpleNamespace):
        __hash__ = object.__hash__

    shop = Host(name="shop-on-app1", groups=["web"],
                           data={"app_user": "shop", "port": 8080, "project": "shop",
                                 "ssh_hostname": "app1.example.com"})
    blog = Host(name="app1.example.com", groups=["web"],
                           data={"app_user": "blog", "port": 8080, "project": "blog"})
    with pytest.raises(DeployError) as stopped:
        preflight.preflight(SimpleNamespace(inventory=[shop, blog], failed_hosts=set()))
    assert stopped.value.problems == [
        "host app1.example.com: port = 8080: shop already listens there on the same machine (shop-on-app1): give one "
        "of them another port"]

    # Behind one front, HTTPS sites share 80 and 443 by domain (each app has its own socket).
    shop.data.update(domain="shop.example.com")
    blog.data.update(domain="blog.example.com")
    runs = [SimpleNamespace(inventory=[shop, blog], failed_hosts=set()) for _ in range(2)]  # one id each
    preflight.preflight(runs[0])
    blog.data.update(domain="shop.example.com")
    with pytest.raises(DeployError) as stopped:
        preflight.preflight(runs[1])
    assert stopped.value.problems == [
        "host app1.example.com: domain = shop.example.com: shop already serves it on the same machine "
        "(shop-on-app1): give one of them another domain"]



def test_every_host_waits_for_the_checks_of_all_hosts(tmp_path):
    """Hosts prepare in parallel greenlets; reading a secrets file yields (it asks git).
    The first host's preflight runs the checks, the others wait for them: one clear
    line, never a host that went on alone into a traceback."""
    import subprocess
    import sys

    (tmp_path / "web.toml").write_text('API_TOKEN = "abc\\ndef"\n')
    (tmp_path / "web.toml").chmod(0o600)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DJDEPLOY_SECRET_")}
    result = subprocess.run([str(Path(sys.executable).parent / "pyinfra"), "-y", "tests/fake_inventory.py",
                             "deploy.py"], cwd=ROOT, env={**environ, "DJDEPLOY_SECRETS_DIR": str(tmp_path)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert result.returncode == 1
    errors = [line for line in result.stdout.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "web.toml: API_TOKEN holds a line break" in errors[0], result.stdout[-2000:]
    assert "Traceback" not in result.stdout and "exception occurred" not in result.stdout


def test_release_commands_reach_the_host_as_quoted_words(monkeypatch):
    monkeypatch.chdir(ROOT)
    s = parse("app1", {"app_user": "web", "port": 80,
                       "release_commands": ["compress --force", "say 'two words' $(id) ;rm"]}, ["web"])
    assert s.release_commands == ("compress --force", "say 'two words' '$(id)' ';rm'")
    with pytest.raises(DataError) as error:
        parse("app1", {"app_user": "web", "port": 80, "release_commands": ["say 'unclosed"]}, ["web"])
    assert "release_commands: \"say 'unclosed\": No closing quotation" in error.value.problems[0]


def test_values_ending_in_a_line_break_are_refused(monkeypatch):
    """A pattern's "$" allows a final line break: it would end a line in a generated file."""
    monkeypatch.chdir(ROOT)
    with pytest.raises(DataError) as error:
        parse("app1", {"app_user": "web", "port": 80, "settings_module": "project.settings\n",
                       "debian_packages": ["curl\n"]}, ["web"])
    assert len(error.value.problems) == 2


def test_app_env_cannot_replace_what_the_deploy_sets(monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(DataError) as error:
        parse("app1", {"app_user": "web", "port": 80, "app_env": {"DJANGO_SETTINGS_MODULE": "project.settings"}},
              ["web"])
    assert "app_env key 'DJANGO_SETTINGS_MODULE' is a variable the deploy sets" in error.value.problems[0]


@pytest.mark.parametrize("path", ["../etc/passwd", "/etc/passwd", "venv", "venv/bin/python", ".env",
                                  "a/../../b", "-rf", "a//b", "stats.db\n", "a b"])
def test_a_linked_path_that_could_leave_the_release_is_one_line(monkeypatch, path):
    """linked_files and linked_dirs name paths inside the release (release.sh replaces each
    with a link to shared/data/linked): nothing outside it, not its venv, no option."""
    monkeypatch.chdir(ROOT)
    for key in ("linked_files", "linked_dirs"):
        with pytest.raises(DataError) as error:
            parse("app1", {"app_user": "web", "port": 80, key: ["ok.db", path]}, ["web"])
        assert len(error.value.problems) == 1 and f"app1 (group web): {key}.1 " in error.value.problems[0], error.value.problems
    s = parse("app1", {"app_user": "web", "port": 80, "linked_files": ["huey-stats.db", "var/x.db"],
                       "linked_dirs": ["cache"]}, ["web"])
    assert s.linked == ("file huey-stats.db", "file var/x.db", "dir cache")


def test_a_balanced_site_that_cannot_work_is_one_line_each(monkeypatch):
    """A balancer named by a host name (the web hosts' front matches addresses), one with no
    web host to send to, a batch that drains every web host at once, two files hosts."""
    from types import SimpleNamespace

    from djdeploy import preflight
    from djdeploy.errors import DeployError

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(preflight, "check_templates", lambda host, s, secrets: [])
    monkeypatch.setattr(preflight, "_secrets", lambda host, s: ({}, None))

    class Host(SimpleNamespace):
        __hash__ = object.__hash__

    def problems(*hosts):
        with pytest.raises(DeployError) as stopped:
            preflight.preflight(SimpleNamespace(inventory=list(hosts), failed_hosts=set()))
        return stopped.value.problems

    web = [Host(name=f"10.0.0.{n}", groups=["web"], data={"app_user": "web", "port": 80}) for n in (11, 12)]
    named = Host(name="lb.example.com", groups=["lb"], data={"balancer": True, "port": 80})
    assert problems(named, *web) == [
        "host lb.example.com: the web hosts see the balancer's connections come from an address, not "
        "'lb.example.com': set balancer_address = \"<its IP address>\" for it"]
    lb = Host(name="10.0.0.10", groups=["lb"], data={"balancer": True, "port": 80})
    assert problems(lb) == [
        "project my_awesome_project: a balancer (10.0.0.10) but no web host in the inventory to send requests "
        "to: add web hosts, or remove the balancer"]
    for host in web:
        host.data["batch"] = "100%"
    assert problems(lb, *web) == [
        "project my_awesome_project: batch = 100% switches all 2 of its web hosts at once, and each is out of its "
        "balancer while it switches: the site would have no host left; set batch to at most 1 (or leave it out: "
        "1 at a time)"]
    for host in web:
        del host.data["batch"]
    files = [Host(name=f"10.0.0.{n}", groups=["files"], data={"files_server": True, "port": 80}) for n in (21, 22)]
    assert problems(lb, *web, *files) == [
        "project my_awesome_project: 2 files hosts (10.0.0.21, 10.0.0.22): one holds a project's uploads; put the "
        "others in another group"]
    # Named by its address (balancer_address), it is fine; the web hosts are behind it.
    named.data["balancer_address"] = "10.0.0.10"
    state = SimpleNamespace(inventory=[named, *web], failed_hosts=set())
    preflight.preflight(state)
    settings = {name: s for name, (s, _, _) in preflight.checked(state).items()}
    assert [settings[h.name].behind for h in web] == [("10.0.0.10",), ("10.0.0.10",)]
    assert "10.0.0.10" in settings["10.0.0.11"].allowed_hosts and not settings["10.0.0.11"].front_tls
    assert [row[:3] for row in preflight.balanced(state, settings["lb.example.com"])] == [
        ("10.0.0.11", "10.0.0.11", 80), ("10.0.0.12", "10.0.0.12", 80)]


def test_backups_that_cannot_work_are_one_line_each(monkeypatch):
    """The backup password missing, too short or differing between a project's hosts; two
    backup hosts; wrong `backups` fields. On PostgreSQL, the db host and the backup host
    learn each other; a files host backs up the uploads it keeps. The password never reaches the app's .env."""
    from types import SimpleNamespace

    from djdeploy import preflight
    from djdeploy.errors import DeployError

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(preflight, "check_templates", lambda host, s, secrets: [])
    monkeypatch.delenv("DJDEPLOY_SECRET_BACKUP_PASSWORD", raising=False)
    monkeypatch.setattr("djdeploy.config.envfile.folder", lambda: ROOT / "tests" / "no-secrets-here")

    class Host(SimpleNamespace):
        __hash__ = object.__hash__

    def state(*hosts):
        made = SimpleNamespace(inventory=list(hosts), failed_hosts=set())
        for host in hosts:
            host.state = made  # as pyinfra's hosts have it
        return made

    def problems(*hosts):
        with pytest.raises(DeployError) as stopped:
            preflight.preflight(state(*hosts))
        return stopped.value.problems

    web = [Host(name=f"10.0.0.{n}", groups=["web"], data={"app_user": "web", "port": 80}, state=None)
           for n in (11, 12)]
    keeper = Host(name="10.0.0.30", groups=["backup"], data={"backup_server": True}, state=None)
    assert problems(keeper, *web) == [
        f"host {h.name}: secret BACKUP_PASSWORD not set: put it in {ROOT}/tests/no-secrets-here/<group>.toml "
        "(groups: web; see secrets/example.toml) or export DJDEPLOY_SECRET_BACKUP_PASSWORD" for h in web]
    monkeypatch.setenv("DJDEPLOY_SECRET_BACKUP_PASSWORD", "short")
    assert problems(keeper, *web) == [
        f"host {h.name}: secret BACKUP_PASSWORD must be 16 or more printable ASCII characters, no spaces: e.g. "
        "python3 -c 'import secrets; print(secrets.token_urlsafe(24))'" for h in web]
    monkeypatch.setenv("DJDEPLOY_SECRET_BACKUP_PASSWORD", "a-good-long-backup-password")
    second = Host(name="10.0.0.31", groups=["backup"], data={"backup_server": True}, state=None)
    assert problems(keeper, second, *web) == [
        "project my_awesome_project: 2 backup hosts (10.0.0.30, 10.0.0.31): one holds a project's repository; "
        "put the others in another group"]
    db = Host(name="10.0.0.40", groups=["db"], data={"database_server": True}, state=None)
    monkeypatch.setenv("DJDEPLOY_SECRET_DATABASE_PASSWORD", "a-good-long-database-password")
    on_postgres = state(db, keeper, *web)
    preflight.preflight(on_postgres)  # the db host's cluster goes to the backup host (pgBackRest)
    linked = preflight.checked(on_postgres)
    assert (linked["10.0.0.40"][0].backup_host, linked["10.0.0.40"][0].backup_from) == ("10.0.0.30", "10.0.0.30")
    assert (linked["10.0.0.30"][0].backup_db, linked["10.0.0.30"][0].backup_db_address) == ("10.0.0.40", "10.0.0.40")
    assert not linked["10.0.0.11"][0].restic_backups  # the web hosts keep no repository of their own
    assert preflight.project_backup_password(on_postgres, "my_awesome_project") == "a-good-long-backup-password"
    files = Host(name="10.0.0.50", groups=["files"], data={"files_server": True, "port": 80}, state=None)
    with_files = state(db, keeper, files, *web)
    preflight.preflight(with_files)  # the files host backs up the uploads it keeps (restic)
    linked = preflight.checked(with_files)
    assert linked["10.0.0.50"][0].restic_backups and linked["10.0.0.50"][0].backup_from == "10.0.0.30"
    assert preflight.backup_clients(with_files, linked["10.0.0.30"][0]) == ["10.0.0.50"]
    wrong = Host(name="10.0.0.13", groups=["web"], data={"app_user": "web", "port": 80, "backups": {"keep_daily": -1,
                                                                                               "when": "daily"}})
    found = problems(keeper, wrong, *web)
    assert len(found) == 2 and all(p.startswith("host 10.0.0.13 (group web): backups.") for p in found), found

    fine = state(keeper, *web)
    preflight.preflight(fine)
    checked = preflight.checked(fine)
    assert checked["10.0.0.11"][0].backup_host == "10.0.0.30" and checked["10.0.0.11"][0].backup_from == "10.0.0.30"
    assert "BACKUP_PASSWORD" not in checked["10.0.0.11"][1]
    assert preflight.backup_password(web[0]) == "a-good-long-backup-password"


@pytest.mark.parametrize("key, typed", [("backup", "01234567"), ("backup", "67535182"), ("release", "1234e5678901"),
                                        ("release", "012345678901")])
def test_an_id_of_digits_is_taken_as_written(monkeypatch, key, typed):
    """pyinfra turns `--data backup=01234567` into the int 1234567 (and `1234e5678901` into a
    float); a restic snapshot id or a release id of digits is still the one the operator typed."""
    from pyinfra_cli.util import parse_cli_arg

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr("sys.argv", ["pyinfra", "inventory.py", "restore.py", "--data", f"{key}={typed}"])
    pyinfra_made = parse_cli_arg(typed)
    assert type(pyinfra_made) is not str  # what the fix is for: pyinfra's own reading of it
    s = parse("app1", {"app_user": "web", "port": 80, key: pyinfra_made}, ["web"])
    assert getattr(s, key) == typed
