"""Pieces of files/release.sh that need no host: what a failed check shows."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHECK_DEPLOY = """\
SystemCheckError: System check identified some issues:

ERRORS:
?: (security.E001) the first error
?: (security.E002) the second error

WARNINGS:
""" + "".join(f"?: (security.W{n:03}) warning number {n}\n" for n in range(1, 12)) + """
System check identified 13 issues (0 silenced).
"""


def shown(output: str, tmp_path) -> str:
    """release.sh's `shown` on a check's output (the script's functions, without its dispatch)."""
    script = (ROOT / "files" / "release.sh").read_text().split("\ncommand=")[0]
    (tmp_path / "out").write_text(output)
    return subprocess.run(["bash", "-c", script + '\nshown "$1"', "release.sh", str(tmp_path / "out")],
                          capture_output=True, text=True, check=True).stdout


def test_check_deploy_errors_are_shown_before_its_warnings(tmp_path):
    lines = shown(CHECK_DEPLOY, tmp_path).splitlines()
    assert lines[0] == "ERRORS:"
    assert "the first error" in lines[1] and "the second error" in lines[2]
    assert not any("warning number" in line for line in lines)


def test_other_failures_show_their_last_lines(tmp_path):
    output = "".join(f"line {n}\n" for n in range(1, 20))
    assert shown(output, tmp_path).splitlines() == [f"line {n}" for n in range(15, 20)]


def test_an_exception_printed_before_other_output_is_shown(tmp_path):
    output = "CommandError: Can't find msgfmt.\nLoading\nkey exists\n\n431 static files copied\n"
    lines = shown(output, tmp_path).splitlines()
    assert lines[0] == "CommandError: Can't find msgfmt." and lines[-1] == "431 static files copied"
