"""The lab's leftover job steps (plugins/lab_steps.py): found by what they hold open under the lab's
directory, ended with every process below them; another lab's, or a stranger's, left alone."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

from plugins.lab_steps import end_leftover_steps, leftover_steps


def _fake_step(cwd: Path) -> subprocess.Popen:
    """A process called slurmstepd (argv[0]) working in `cwd`, with a job below it, as slurmstepd runs one.
    When its job dies it becomes a sleep itself (same pid, no new child): a step whose job was killed
    first must still be there for its own SIGKILL, or on a busy machine it exits 0 in between (CI flake)."""
    return subprocess.Popen(["bash", "-c", "exec -a slurmstepd bash -c 'sleep 60 & wait; exec sleep 60'"], cwd=cwd)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def _wait_for_child(pid: int) -> int:
    deadline = time.monotonic() + 10
    while not _children(pid):
        assert time.monotonic() < deadline, "the fake step never started its job"
        time.sleep(0.02)
    return _children(pid)[0]


def test_a_labs_leftover_step_and_its_job_are_ended_and_no_other(tmp_path: Path) -> None:
    lab, other = tmp_path / "placer-lab", tmp_path / "placer-lab-24.11"  # one name a prefix of the other
    (lab / "log").mkdir(parents=True)
    other.mkdir()
    mine, theirs = _fake_step(lab / "log"), _fake_step(other)
    try:
        job = _wait_for_child(mine.pid)
        _wait_for_child(theirs.pid)
        found = leftover_steps(lab)
        assert found == [job, mine.pid]  # the job first, so it is not re-parented before it is seen
        assert leftover_steps(Path("/nonexistent-lab")) == []
        assert end_leftover_steps(lab) == 2
        assert mine.wait(10) == -9
        assert theirs.poll() is None
        assert leftover_steps(lab) == []
    finally:
        for p in (mine, theirs):
            p.kill()
            p.wait()


def test_a_step_seen_through_the_chroots_bind_mount_is_the_labs(tmp_path: Path) -> None:
    root, base = tmp_path / "chroot", Path("/var/lib/placer-lab-x")
    inside = root / str(base).lstrip("/") / "log"
    inside.mkdir(parents=True)
    step = _fake_step(inside)
    try:
        _wait_for_child(step.pid)
        assert leftover_steps(base) == []
        assert step.pid in leftover_steps(base, root)
    finally:
        step.kill()
        step.wait()
