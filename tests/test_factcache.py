"""djdeploy.speed.factcache: the facts' commands run in one script, and each job's answer read
back from it is what the command prints when run on its own."""

import subprocess

from djdeploy.speed.factcache import frame, split

JOBS = [
    "echo one; echo two",
    "printf 'no newline at the end'",
    "printf 'a\\n\\nb\\n\\n\\n'",  # blank lines inside are kept, trailing ones dropped (as $(...))
    "true",
    "echo partial; echo oops >&2; exit 3",
    "cd / && exit 0",  # neither the cd nor the exit reaches the next job
    "pwd",
    "cat",  # stdin is empty: a job that reads it does not hang
    "if [ -d /nonexistent ]; then echo yes; fi",
    "echo '@@S 0 0'; echo '@@B 1'",  # lines like the markers of other tools, inside a job's output
    "echo it\"'\"s quoted; echo \"$((1 + 2))\"",
]


def alone(command: str) -> tuple[bool, list[str]]:
    run = subprocess.run(["sh", "-c", f'o=$({command}); r=$?; [ -n "$o" ] && printf "%s\\n" "$o"; exit $r'],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd="/tmp")
    return run.returncode == 0, run.stdout.splitlines()


def test_each_job_answers_as_it_does_alone():
    script, marker = frame(JOBS)
    run = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=10,
                         stdin=subprocess.DEVNULL, cwd="/tmp")
    assert run.returncode == 0
    assert "oops" not in run.stdout + run.stderr  # stderr is not read
    answers = split(run.stdout.splitlines(), marker)
    assert sorted(answers) == list(range(len(JOBS)))
    for index, command in enumerate(JOBS):
        assert answers[index] == alone(command), command
    assert answers[4] == (False, ["partial"])
    assert answers[6] == (True, ["/tmp"])
    assert answers[2] == (True, ["a", "", "b"])
