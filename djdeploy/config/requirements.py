"""What a requirements file may say: the lines that would let pip run a package's code on
the controller or choose where packages come from are refused unless data allows them
(package_indexes, source_builds); checked with the rest of the data, before any build."""

from __future__ import annotations

import re
from pathlib import Path

INCLUDE = re.compile(r"^\s*(?:-r|--requirement|-c|--constraint)(?:\s+|=)(\S+)", re.M)


def index_options(requirements: Path, seen: frozenset = frozenset()):
    """(option, value) of each index option in `requirements` and the files it includes."""
    for _, _, line in lines(requirements, seen):
        found = index_option(line)
        if found:
            yield found



def index_option(line: str) -> tuple[str, str] | None:
    """(option, value) if requirements line `line` is an index option ("" for --no-index)."""
    match = (re.match(r"(--index-url|--extra-index-url|--find-links|--trusted-host)(?:\s*=\s*|\s+)(\S+)", line)
             or re.match(r"(-i|-f)\s*(\S+)", line) or re.match(r"(--no-index)()(?:\s|$)", line))
    return (match[1], match[2]) if match else None



def lines(requirements: Path, seen: frozenset = frozenset()):
    """(file, line number, text) of each logical line of a requirements file and of the
    files it includes (-r, -c), comments and continuations taken out."""
    try:
        text = requirements.read_text(errors="replace")
    except OSError:
        return
    number, pending = 0, ""
    for n, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw)
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            number = number or n
            continue
        line, where, pending, number = (pending + line).strip(), number or n, "", 0
        if not line:
            continue
        yield requirements, where, line
        included = INCLUDE.match(line)
        if included:
            path = (requirements.parent / included[1]).resolve()
            if path not in seen and path.is_file():
                yield from lines(path, seen | {path})



def _allowed_index(option: str, value: str, base: Path, allowed) -> bool:
    """True if data's package_indexes (`allowed`) lets a requirements file at `base` use
    index option `option value`."""
    def norm(text):
        return text.rstrip("/")
    urls = [entry for entry in allowed if "://" in entry]
    if option == "--no-index":
        return bool(allowed)  # only the allowed find-links then
    if option == "--trusted-host":
        from urllib.parse import urlsplit
        return value in allowed or value in {urlsplit(u).hostname for u in urls} | {urlsplit(u).netloc for u in urls}
    if norm(value) in {norm(entry) for entry in allowed}:
        return True
    if "://" not in value:  # a folder of --find-links: the same folder, however it is written
        here = (base / value).resolve()
        return any("://" not in entry and Path(entry).resolve() == here for entry in allowed)
    return False



# What pip builds whatever --only-binary says: an editable, a URL, a path (any word with a
# slash, or an archive's name), a name @ a URL.
DIRECT = re.compile(r"^(-e\b|--editable\b|\.$|[^\s;]*/|\S+\.(tar\.gz|tgz|tar\.bz2|tar\.xz|tar|zip)(\s|;|$)"
                    r"|[A-Za-z0-9][A-Za-z0-9._-]*(\[[^]]*\])?\s*@)")



def requirements_problems(requirements: Path, indexes, where: str) -> list[str]:
    """One line per line of `requirements` (or a file it includes) that would let pip run a
    package's code on this machine or choose where packages come from: an index option
    that data's package_indexes (`indexes`) does not allow, --no-binary, a direct reference
    to a source (path, URL, VCS, editable; a .whl is fine)."""
    problems = []
    for path, number, line in lines(requirements):
        at = f"{where}: requirements file {path} line {number}"  # never its text: it may not be one
        found = index_option(line)
        if found:
            option, value = found
            if not _allowed_index(option, value, path.parent, indexes):
                shown = re.sub(r"//[^/@\s]*@", "//***@", f"{option} {value}".strip())  # no password
                problems.append(f"{at}: {shown}: a requirements file may not choose where packages come from "
                                f"unless data allows it: add {re.sub(r'//[^/@]*@', '//***@', value or option)!r} "
                                "to package_indexes (in group_data: the fleet allows an index, not the app), or remove the line")
        elif line.startswith("-") and not DIRECT.match(line) and not line.startswith("--no-binary"):
            continue  # -r, -c (read themselves), --pre, --hash...
        elif re.match(r"--no-binary\b", line):
            problems.append(f"{at}: --no-binary makes pip build packages from source on this machine: remove it; "
                            "name a package that has no wheel in source_builds instead")
        elif DIRECT.match(line) and not re.search(r"\.whl(#\S*)?(\s|;|$)", line):
            problems.append(f"{at}: a direct reference to a source (a path, URL, VCS or editable) is built by "
                            "pip, running its code on this machine: name a wheel (.whl) instead, or the package "
                            "from the index (and, if it has no wheel, in source_builds)")
    if len(problems) > 3:  # not a requirements file, perhaps: its first lines say enough
        problems[3:] = [f"{where}: requirements file {requirements}: {len(problems) - 3} more lines like these"]
    return problems
