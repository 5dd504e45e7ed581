"""Files the app reads, put on a host whole: .env (its secrets never shown), the secret
key made on the host, and every upload, which lands as <name>.part, is checked, and waits
as <name>.next for the switch when the app reads it at start."""

from __future__ import annotations

import functools
import hashlib
import io
from pathlib import Path

import gevent.lock
import jinja2
from pyinfra import host, logger
from pyinfra.api import FileUploadCommand, FunctionCommand, OperationError, QuoteString, StringCommand, operation
from pyinfra.facts.files import File
from pyinfra.operations import files

from djdeploy.config import envfile
from djdeploy.ops.facts import EnvFile, EnvFileLines, FileText, SecretDigest
from djdeploy.shell import privilege, shell_quote, touching

NEXT = ".next"  # a file the app reads at start, waiting beside it for the switch (release.sh)


@functools.lru_cache(maxsize=32)
def env_template(text: str) -> jinja2.Template:
    """The .env template, compiled once per run (not once per host)."""
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                                     autoescape=False)
    environment.filters["envquote"] = envfile.quote
    return environment.from_string(text)


def render_env(src: str, s, secrets: dict) -> str:
    """The .env text from template `src`: the settings' variables, then the secrets, quoted."""
    text = env_template(Path(src).read_text()).render(s=s, environment=s.environment, secrets=secrets)
    return text if text.endswith("\n") else text + "\n"  # as it arrives: pyinfra ends stdin with one


@operation()
def env_file(s, src: str, secrets: dict):
    """The app's .env holds the settings' variables and the host's secrets, root:<group> 0640.

    + s: the host's AppSettings
    + src: the .env template (variables quoted with its `envquote` filter)
    + secrets: NAME -> value, from `envfile.load`

    Never printed, never diffed, never in an argument: the host is compared through salted
    digest of the file (EnvFile) and, when it differs, of each line (EnvFileLines): the run reports only the names that change,
    and the new file goes over the SSH channel's stdin into a file beside .env that is
    root's and 0600 from the start, then gets its group and mode, then is renamed over
    .env. With --sudo too: nothing passes through /tmp.
    """
    text = render_env(src, s, secrets)
    salt = f"djdeploy-env:{s.project}"
    present = host.get_fact(EnvFile, path=s.env_file, salt=salt)
    if present and present["digest"] == envfile.file_digest(text, salt) and present["owner"] == ["root", s.group, "640"]:
        return
    wanted = envfile.line_digests(text, salt)
    lines = host.get_fact(EnvFileLines, path=s.env_file, salt=salt) if present else None
    what = envfile.changes(lines, wanted) if present else ["created"]
    what = what or [f"owner or mode ({' '.join(present['owner'])}) set to root {s.group} 640"]
    logger.info(f"{host.print_prefix}.env: {', '.join(what)} (restarts {s.unit})")
    yield sent_whole(s.env_file + NEXT, text, salt, s.group, "0640", shown=".env")


def sent_whole(path: str, text: str, salt: str, group: str, mode: str, shown: str) -> StringCommand:
    """The command that writes secret `text` to `path` (root:`group` `mode`), sent over the
    SSH channel's stdin (with its salted digest first) into a file that is root's and 0600
    from the start: it replaces `path` only if it arrived whole (a killed controller sends
    part of it); otherwise the host fails with one line naming `shown`."""
    dest = shell_quote(path)
    return touching(StringCommand(
        f"umask 077 && t=$(mktemp {dest}.XXXXXX) && {{ read -r want && cat > \"$t\" && "
        f"[ \"$({{ printf '%s\\0' {shell_quote(salt)}; cat \"$t\"; }} | sha256sum | cut -d' ' -f1)\" = \"$want\" ] && "
        f"sync \"$t\" && chown root:{shell_quote(group)} \"$t\" && chmod {mode} \"$t\" && mv -f \"$t\" {dest}; }} "
        f"|| {{ rm -f \"$t\"; echo {shell_quote(shown + ' did not arrive whole: left as it was')} >&2; exit 1; }}",
        # One piece, not split into lines: str.splitlines would also split at U+2028,
        # U+0085, ... inside a value, and pyinfra ends each piece with a line break.
        _stdin=[envfile.file_digest(text, salt) + "\n" + text],
    ), path)


@operation()
def secret_file(path: str, text: str, salt: str, shown: str, group: str = "root", mode: str = "0600"):
    """A secret the deploy itself uses on the host (root:`group`, `mode`) holds `text`:
    compared by salted digest, sent as `.env` is (sent_whole), never printed, diffed or in
    an argument.

    + path: the remote file
    + text: its content
    + salt: the digests' salt
    + shown: what a message calls it
    + group, mode: who else may read it (a tool running as `group`)
    """
    text = text if text.endswith("\n") else text + "\n"  # as it arrives: pyinfra ends stdin with one
    if host.get_fact(SecretDigest, path=path, salt=salt) != envfile.file_digest(text, salt):
        logger.info(f"{host.print_prefix}{shown}: changed")
        yield sent_whole(path, text, salt, group, mode, shown)


@operation()
def secret_key(path: str, group: str, fallbacks: str, version: int = 1):
    """A random Django SECRET_KEY exists at `path` (root:`group` 0640), made on the host, at
    the version data asks for.

    + path: remote file; an existing key is kept, so sessions survive deploys
    + group: the app's group, which may read it
    + fallbacks: remote file of the key before the last rotation (SECRET_KEY_FALLBACKS)
    + version: data's secret_key_version; above the host's (<path>.version), the key is
      rotated: a new one, the one before kept in `fallbacks` until the next rotation

    The key is generated on the host and never shows in any output; the other hosts of its
    site get it by `shared_secret_key`.
    """
    quoted, mark = shell_quote(path), shell_quote(f"{path}.version")
    make = (f"python3 -c 'import secrets; print(secrets.token_urlsafe(50))' > {quoted}.new"
            f" && chown root:{shell_quote(group)} {quoted}.new && chmod 0640 {quoted}.new && mv {quoted}.new {quoted}"
            f" && echo {int(version)} > {mark}")
    if not host.get_fact(File, path=path):
        yield f"umask 077 && {make}"
        return
    if int(version) > key_version(host, path):
        old = shell_quote(fallbacks)
        yield (f"umask 077 && cp {quoted} {old}.new && chown root:{shell_quote(group)} {old}.new && chmod 0640 {old}.new"
               f" && mv {old}.new {old} && {make}")


@operation()
def shared_secret_key(s, source: str | None):
    """This host's SECRET_KEY (and the key before the last rotation, SECRET_KEY_FALLBACKS)
    are the ones host `source` has, the first host of the site (the project's hosts that
    share its database: a session or a signed link made through one holds on every
    other). Compared by salted digests; copied through the controller's memory, read from
    `source` over an SSH channel whose output is not printed and written here over SFTP
    as <file>.part, then moved in: never in an argument, an output or a file on the
    controller.

    + s: the host's AppSettings
    + source: the site's first host (it makes and rotates the key: `secret_key`); None:
      this host is a site of its own (SQLite), its key its own
    """
    if source is None:
        return
    salt = f"djdeploy-key:{s.project}"
    files = (s.secret_key_file, s.secret_key_fallbacks_file)
    mine = [host.get_fact(SecretDigest, path=f, salt=salt) for f in files]
    if source == host.name:
        return  # the key every other host of the site copies
    other = host.state.inventory.get_host(source)
    if not host.state.is_host_in_limit(other):
        if mine[0] is None:
            raise OperationError(f"{host.name} has no SECRET_KEY yet, and {source}, the first host of its site, whose "
                                 "key it must share, is not in this run: deploy without --limit (or with it too)")
        return  # it keeps the one it has, copied when both were in a run
    rotates = int(s.secret_key_version) > key_version(other, s.secret_key_file)  # rotated there in this run?
    if not rotates and mine[0] is not None and [other.get_fact(SecretDigest, path=f, salt=salt) for f in files] == mine:
        return
    yield FunctionCommand(copy_secrets, (other, tuple(zip(files, files)), s.group), {})


def key_version(where, path: str) -> int:
    """The version of the key at `path` on host `where` (<path>.version; 1 when none says)."""
    written = where.get_fact(FileText, path=f"{path}.version")
    return int(written) if written and written.isdigit() else 1


_site_keys: dict = {}  # (id(state), source host, path) -> the file's text or None, read once per run
_reading = gevent.lock.BoundedSemaphore()


def copy_secrets(state, host, source, paths: tuple, group: str, mode: str = "0640") -> bool:
    """Files of host `source` to `host` (root:`group` 0640), through memory only, `paths`
    as (there, here) pairs; one absent there is removed here. Each is read once per run
    for every host of the site (one at a time), over an SSH channel whose output is not
    printed, and written over SFTP as <path>.part, then moved in."""
    with _reading:
        for path, _ in paths:
            if (id(state), source.name, path) not in _site_keys:
                command = StringCommand("if [ -f", QuoteString(path), "]; then echo found; cat", QuoteString(path), "; fi")
                ok, output = source.run_shell_command(command, print_output=False, print_input=False,
                                                      **privilege(source))
                if not ok:
                    raise OperationError(f"could not read the site's secret from {source.name} ({path})")
                lines = output.stdout_lines
                _site_keys[(id(state), source.name, path)] = "\n".join(lines[1:]).strip() if lines[:1] == ["found"] else None
    if not _site_keys[(id(state), source.name, paths[0][0])]:
        raise OperationError(f"{source.name} has no secret at {paths[0][0]}: deploy it first")
    moves = []
    for there, path in paths:
        text = _site_keys[(id(state), source.name, there)]
        quoted = shell_quote(path)
        if text is None:
            moves.append(f"rm -f {quoted}")
            continue
        if not host.put_file(io.BytesIO((text + "\n").encode()), f"{path}.part", **privilege(host)):
            raise OperationError(f"could not write the site's secret to {path}.part")
        moves.append(f"chown root:{shell_quote(group)} {quoted}.part && chmod {mode} {quoted}.part && mv {quoted}.part {quoted}")
    ok, output = host.run_shell_command(StringCommand(" && ".join(moves)), print_output=False, print_input=False,
                                        **privilege(host))
    if not ok:
        raise OperationError(f"could not move the site's secret into place: {output.stderr.strip()[:300]}")
    return True


@operation()
def upload(src: str, dest: str, mode: str, user: str = "root", group: str = "root", staged: bool = False,
           **data):
    """The file `dest` has the content of local `src` (a template when it ends in .j2,
    rendered with `data`), owned by `user`:`group` with `mode`.

    + src, dest, mode, user, group: as files.put and files.template
    + staged: a file the app reads at start: a new content waits beside it as
      `dest.next`, and the switch moves it in with the release it belongs to (and back
      if that release fails its health check). A run that stops before the switch leaves
      what the app reads as it was.

    Compared with the file in place as files.put compares it (a dry run with --diff shows
    the lines). A new content is uploaded to `<name>.part`, checked against its sha1 and
    only then renamed: a controller killed during an upload (SFTP writes in place) never
    leaves a cut file under a name anything reads.
    """
    if src.endswith(".j2"):
        commands = list(files.template._inner(src=src, dest=dest, user=user, group=group, mode=mode, **data))
    else:
        commands = list(files.put._inner(src=src, dest=dest, user=user, group=group, mode=mode))
    sent = next((c for c in commands if isinstance(c, FileUploadCommand)), None)
    if sent is None:
        yield from commands  # owner or mode only: set on the file in place
        return
    content = sent.src.getvalue().encode() if hasattr(sent.src, "getvalue") else Path(sent.src).read_bytes()
    final = dest + NEXT if staged else dest
    yield FileUploadCommand(sent.src, final + ".part", remote_temp_filename=sent.remote_temp_filename)
    yield arrived_whole(final, hashlib.sha1(content).hexdigest(), user, group, mode, shown=dest)


def arrived_whole(final: str, sha1: str, user: str, group: str, mode: str, shown: str) -> StringCommand:
    """`final`.part becomes `final` (with owner and mode) only if its SHA-1 is `sha1`;
    otherwise it goes, and the host fails with one line naming `shown`."""
    part = shell_quote(final + ".part")
    return touching(StringCommand(
        f"[ \"$(sha1sum < {part} | cut -c1-40)\" = {sha1} ] "
        f"&& chown {shell_quote(user)}:{shell_quote(group)} {part} && chmod {shell_quote(mode)} {part} "
        f"&& mv -f {part} {shell_quote(final)} "
        f"|| {{ rm -f {part}; echo {shell_quote(shown + ' did not arrive whole: left as it was')} >&2; exit 1; }}"
    ), final)
