"""What reaches the operator's terminal from hosts is text, never terminal commands.

A host, or an app on it, is not trusted: a line from its journal, a command's output, a
lock holder's name could carry escape sequences that retitle the terminal, erase or move
over lines, or a carriage return that writes a forged "[host] ..." over the line shown.
Every such character is shown escaped (\\x1b, \\x0d, \\x9b), as journalctl shows them, in
the deploy's own lines and in pyinfra's (its output of a failed command). Colour codes
(SGR: ESC [ digits m) pass: pyinfra colours its own prefixes with them, and they can
only colour text.
"""

from __future__ import annotations

import logging
import re

# C0 controls but tab, DEL, C1 controls; and the bidirectional overrides, which reorder
# what a line seems to say (Trojan Source).
UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def _escaped(match: re.Match) -> str:
    char = match.group()
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def printable(text: str, colour: bool = False) -> str:
    """`text` with every character that commands a terminal escaped; with `colour`, SGR
    colour sequences are kept as they are."""
    if not colour:
        return UNSAFE.sub(_escaped, text)
    parts = COLOUR.split(text)
    codes = COLOUR.findall(text)
    return "".join(UNSAFE.sub(_escaped, part) + (codes[i] if i < len(codes) else "") for i, part in enumerate(parts))


class Printable(logging.Filter):
    """A logging filter that makes each record's message printable (colours kept)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        safe = "\n".join(printable(line, colour=True) for line in message.split("\n"))
        if safe != message:
            record.msg, record.args = safe, None
        return True


def install() -> None:
    """Every handler that prints pyinfra's log lines gets the filter (pyinfra's CLI sets
    them up before it reads the inventory); idempotent."""
    for logger in (logging.getLogger("pyinfra"), logging.getLogger()):
        for handler in logger.handlers:
            if not any(isinstance(f, Printable) for f in handler.filters):
                handler.addFilter(Printable())
