"""A requirements file may not choose where packages come from, nor make pip build a
source on the controller: index options need data's package_indexes, and --no-binary and
direct references to a source are refused, each in one line naming the file and the line,
before any host changes. No package index needed."""

from pathlib import Path

import pytest

from djdeploy import build
from djdeploy.config.requirements import requirements_problems
from djdeploy.config.settings import parse
from djdeploy.errors import DataError

ROOT = Path(__file__).resolve().parent.parent


def problems(tmp_path, text, indexes=()):
    (tmp_path / "requirements.txt").write_text(text)
    return requirements_problems(tmp_path / "requirements.txt", indexes, "host web-1")


@pytest.mark.parametrize("line, option", [
    ("--index-url https://evil.example/simple", "--index-url https://evil.example/simple"),
    ("-i https://evil.example/simple", "-i https://evil.example/simple"),
    ("--extra-index-url=https://evil.example/simple", "--extra-index-url https://evil.example/simple"),
    ("--find-links /tmp/wheels", "--find-links /tmp/wheels"),
    ("-f https://evil.example/files/", "-f https://evil.example/files/"),
    ("--trusted-host evil.example", "--trusted-host evil.example"),
    ("--no-index", "--no-index"),
])
def test_an_index_option_is_refused_in_one_line_naming_file_and_option(tmp_path, line, option):
    (found,) = problems(tmp_path, f"six\n{line}  # ours\ndjango\n")
    assert "\n" not in found and found.startswith(f"host web-1: requirements file {tmp_path / 'requirements.txt'} "
                                                  f"line 2: {option}: ")
    assert "package_indexes" in found, found


def test_an_index_data_allows_is_accepted_and_another_still_refused(tmp_path):
    (tmp_path / "wheels").mkdir()
    allowed = ("https://pypi.example.com/simple/", str(tmp_path / "wheels"))
    text = ("--index-url https://pypi.example.com/simple\n--trusted-host pypi.example.com\n"
            "--find-links wheels\n--no-index\nsix\n")
    assert problems(tmp_path, text, allowed) == []
    (found,) = problems(tmp_path, text + "--extra-index-url https://other.example/simple\n", allowed)
    assert "line 6: --extra-index-url https://other.example/simple" in found


def test_an_included_file_is_checked_too(tmp_path):
    (tmp_path / "base.txt").write_text("\n-i https://evil.example/simple\n")
    (found,) = problems(tmp_path, "-r base.txt\n")
    assert f"{tmp_path / 'base.txt'} line 2: -i https://evil.example/simple" in found


@pytest.mark.parametrize("line", [
    "--no-binary :all:", "-e git+https://example.com/pkg.git#egg=pkg", "./vendor/pkg", "/opt/pkg-1.0.tar.gz",
    "pkg @ https://example.com/pkg-1.0.tar.gz", "https://example.com/pkg-1.0.zip",
    "git+https://example.com/pkg.git", "vendor/pkg-1.0.tar.gz", "pkg-1.0.zip", ".",
])
def test_what_makes_pip_build_a_source_here_is_refused(tmp_path, line):
    (found,) = problems(tmp_path, f"six\n{line}\n")
    assert "\n" not in found and "line 2:" in found and "on this machine" in found, found


def test_wheels_by_name_or_url_are_fine(tmp_path):
    assert problems(tmp_path, "six==1.17.0 \\\n  --hash=sha256:abc\npkg @ https://example.com/pkg-1.0-py3-none-any.whl\n"
                              "django[argon2]>=5 ; python_version >= '3.10'\n--pre\n-c sub/constraints.txt\n") == []


def test_data_refuses_the_file_before_any_host_changes(tmp_path, monkeypatch):
    """Through the host's data, as preflight sees it: one line, the key to set."""
    monkeypatch.chdir(ROOT)
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("--extra-index-url https://evil.example/simple\nsix\n")
    data = {"app_user": "web", "port": 80, "requirements": str(reqs)}
    with pytest.raises(DataError) as error:
        parse("web-1", data)
    (found,) = error.value.problems
    assert found.startswith(f"host web-1: requirements file {reqs} line 1: --extra-index-url "
                            "https://evil.example/simple:"), found
    settings = parse("web-1", {**data, "package_indexes": ["https://evil.example/simple"],
                               "source_builds": ["django-jquery-js"]})
    assert settings.package_indexes == ("https://evil.example/simple",)
    assert settings.source_builds == ("django-jquery-js",)


def test_source_builds_takes_package_names_or_a_star(monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(DataError) as error:
        parse("web-1", {"app_user": "web", "port": 80, "source_builds": ["django-jquery-js", "bad name;"]})
    assert any("source_builds" in problem for problem in error.value.problems), error.value.problems
    assert build.source_allowed("Django_JQuery.js==3.1.1", ("django-jquery-js",))
    assert build.source_allowed("anything>=1", ("*",)) and not build.source_allowed("six", ("other",))


def test_a_file_that_is_not_requirements_is_never_shown_and_stops_in_a_few_lines(tmp_path):
    """requirements = "secrets/all.toml" by mistake: its lines are not printed, nor an index's password."""
    text = "".join(f"TOKEN_{n}/s3cret\n" for n in range(10)) + "-i https://user:hunter2@idx.example/simple\n"
    found = problems(tmp_path, text)
    assert len(found) == 4 and found[-1].endswith("8 more lines like these"), found
    assert not any("s3cret" in line or "TOKEN" in line or "hunter2" in line for line in found), found
    (index,) = problems(tmp_path, "-i https://user:hunter2@idx.example/simple\n")
    assert "hunter2" not in index and "https://***@idx.example/simple" in index, index
