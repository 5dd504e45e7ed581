"""What hosts say reaches the operator's terminal as text: escape sequences from an app or
a host (a journal line, a command's output, a lock holder) cannot retitle the terminal,
erase or move over lines, or forge a "[host] ..." line with a carriage return."""

import json
import logging
import sys

from djdeploy import terminal
from djdeploy.run import remote

HOSTILE = ("\x1b]0;pwned\x07"  # retitle the terminal (OSC)
           "\x1b[2K\x1b[1A"  # erase the line, move up (CSI)
           "\r[10.0.0.9] forged"  # back to the line start: a forged host line over the real one
           "\x9b2J"  # CSI as one C1 character
           "\u202eevil")  # right-to-left override


def no_command(text: str) -> None:
    assert not any(c in text for c in "\x1b\x07\r\x9b\u202e"), repr(text)


def test_printable_escapes_every_terminal_command_and_keeps_text():
    shown = terminal.printable("tab\tand " + HOSTILE)
    no_command(shown)
    assert shown.startswith("tab\tand \\x1b]0;pwned\\x07\\x1b[2K") and "\\x0d[10.0.0.9] forged" in shown
    assert "\\x9b2J" in shown and "\\u202eevil" in shown
    assert terminal.printable("\x1b[31mred\x1b[0m \x1b[2K", colour=True) == "\x1b[31mred\x1b[0m \\x1b[2K"


def test_exec_and_logs_relay_hosts_lines_escaped(capfd):
    """exec.py and logs.py print each host's lines through one relay."""
    line = json.dumps({"MESSAGE": [ord(c) for c in "\x1b]0;pwned\x07 hello"], "_SYSTEMD_UNIT": "shop.service",
                       "__REALTIME_TIMESTAMP": "0"})
    target = remote.Target(name="10.0.0.1", data={}, settings=None)
    script = f"print({line!r}); import sys; print({HOSTILE!r}, file=sys.stderr)"
    codes = remote.run_everywhere([(target, [sys.executable, "-c", script])], shape=remote.log_line)
    out, err = capfd.readouterr()
    assert codes == {"10.0.0.1": 0}
    assert "shop.service: \\x1b]0;pwned\\x07 hello" in out
    no_command(out)
    no_command(err)
    assert err.startswith("[10.0.0.1] \\x1b]0;pwned")


def test_pyinfras_output_of_a_failed_command_is_escaped(capfd):
    """A failed operation's output is printed by pyinfra itself (print_host_combined_output)."""
    from pyinfra.connectors.util import CommandOutput, OutputLine
    from pyinfra.api.util import print_host_combined_output
    from pyinfra_cli.log import setup_logging

    logger = logging.getLogger("pyinfra")
    before = list(logger.handlers)
    try:
        setup_logging(logging.INFO)
        terminal.install()

        class Host:
            print_prefix = "[10.0.0.1] "

        print_host_combined_output(Host(), CommandOutput([OutputLine("stderr", "release: " + HOSTILE)]))
    finally:
        for handler in set(logger.handlers) - set(before):
            logger.removeHandler(handler)
    _, err = capfd.readouterr()
    assert "release: \\x1b]0;pwned\\x07" in err, repr(err)
    no_command(err.replace("\x1b[31m", "").replace("\x1b[0m", "").replace("\x1b[39m", ""))
