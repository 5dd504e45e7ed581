"""djdeploy.speed.synth: one stat, one sha1sum and one systemctl answer many facts, each with
the lines its own command would print; a tool that did not answer drops its group."""

import subprocess

from pyinfra.facts.files import Directory, File, Link, Sha1File
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

from djdeploy.speed import synth


def grouped(facts):
    return [(synth.kind(cls, args, kwargs), cls, args, kwargs) for cls, args, kwargs in facts]


def test_each_fact_gets_what_its_own_command_prints(tmp_path):
    (tmp_path / "f").write_text("x\n")
    (tmp_path / "d").mkdir()
    (tmp_path / "l").symlink_to("f")
    facts = grouped([(File, (), {"path": f"{tmp_path}/f"}), (Directory, (), {"path": f"{tmp_path}/d"}),
                     (Link, (), {"path": f"{tmp_path}/l"}), (File, (), {"path": f"{tmp_path}/missing"}),
                     (Sha1File, (), {"path": f"{tmp_path}/f"}), (Sha1File, (), {"path": f"{tmp_path}/missing"})])
    commands = synth.commands(facts)
    assert set(commands) == {"stat", "sha1"}
    answers = {}
    for group, command in commands.items():
        lines = subprocess.run(["sh", "-c", command], capture_output=True, text=True).stdout.splitlines()
        answers.update(synth.outputs_per_fact(group, lines, facts))
    for index, (_, cls, args, kwargs) in enumerate(facts):
        own = cls().command(**kwargs)
        own = own.get_raw_value() if hasattr(own, "get_raw_value") else str(own)
        expected = subprocess.run(["sh", "-c", own], capture_output=True, text=True).stdout.splitlines()
        own_fact, batched_fact = cls(), cls()
        own_fact.command(**kwargs)  # Sha1File's parser needs the path its command saw,
        synth.prepare(batched_fact, synth.kind(cls, args, kwargs), args, kwargs)  # and gets it here

        def process(fact, lines):
            value = fact.process(lines) if lines else fact.default()
            if isinstance(value, dict):  # sha1sum read the file between the two stats
                value.pop("atime", None)
            return value

        assert process(batched_fact, answers[index]) == process(own_fact, expected), (cls.__name__, kwargs)


def test_a_tool_that_does_not_answer_drops_its_group():
    facts = grouped([(File, (), {"path": "/etc/hostname"}), (Sha1File, (), {"path": "/etc/hostname"}),
                     (SystemdStatus, (), {"services": ["a.service"]})])
    # No line for the sentinels (/ for stat, /dev/null for sha1sum), no Id for the unit.
    assert synth.outputs_per_fact("stat", [], facts) is None
    assert synth.outputs_per_fact("sha1", ["not a digest"], facts) is None
    assert synth.outputs_per_fact("systemd", [], facts) is None


def test_one_systemctl_answers_status_and_enabled():
    facts = grouped([(SystemdStatus, (), {"services": ["app.service"]}),
                     (SystemdEnabled, (), {"services": ["app.socket"]})])
    assert "systemctl show" in synth.commands(facts)["systemd"]
    lines = ["Id=app.service", "SubState=running", "UnitFileState=enabled", "",
             "Id=app.socket", "SubState=listening", "UnitFileState=enabled"]
    found = synth.outputs_per_fact("systemd", lines, facts)
    assert SystemdStatus().process(found[0]) == {"app.service": True}
    assert SystemdEnabled().process(found[1]) == {"app.socket": True}


def test_paths_and_units_it_cannot_quote_safely_keep_their_own_command():
    assert synth.kind(File, (), {"path": "/srv/it's"}) is None
    assert synth.kind(File, (), {"path": "~/relative"}) is None
    assert synth.kind(SystemdStatus, (), {"services": ["a.service"], "user_mode": True}) is None
