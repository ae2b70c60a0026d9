"""pyslurm cannot take placer down: its import is tried in a child process first (libslurm ends the
whole process when it finds no slurm.conf), `--slurm-conf` reaches it, and its errors are backend errors.

A stand-in `pyslurm` module, on PYTHONPATH in a temporary directory, plays the real one's failure modes.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from plugins.pyslurm_backend import PyslurmBackend, available, probe
from topology import BackendError

ROOT = Path(__file__).resolve().parent.parent

FATAL = """
import os, sys
sys.stderr.write("fatal: Could not establish a configuration source\\n")
os._exit(1)  # what libslurm's fatal() does: no exception, the process is gone
"""
NEEDS_CONF = """
import os, sys
if not os.path.exists(os.environ.get("SLURM_CONF", "/nonexistent/slurm.conf")):
    sys.stderr.write("fatal: Could not establish a configuration source\\n")
    os._exit(1)
__version__ = "22.5.3"
"""


def fake_pyslurm(tmp_path: Path, body: str) -> dict[str, str]:
    (tmp_path / "pyslurm.py").write_text(textwrap.dedent(body))
    return {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}


def test_a_fatal_import_is_found_in_a_child_and_auto_falls_back(tmp_path: Path) -> None:
    env = fake_pyslurm(tmp_path, FATAL)
    # the whole choice, in a process of its own: with the import done in-process it would die with exit 1
    code = ("from plugins.pyslurm_backend import available; ok, why = available(); print(ok, why)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("False pyslurm does not import here (fatal: Could not establish a configuration "
                                   "source)")


def test_slurm_conf_reaches_the_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_pyslurm(tmp_path, NEEDS_CONF)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.delenv("SLURM_CONF", raising=False)
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=x\n")
    assert probe(None)[0] is None
    assert probe(str(conf)) == ("22.5.3", "")
    assert available("slurm 22.05.8", str(conf)) == (True, "")
    assert available("slurm 24.11.5", str(conf)) == (False, "pyslurm 22.5.3 does not match slurm 24.11.5")


class RPCError(Exception):
    pass


class _Loader:
    @staticmethod
    def load() -> dict:
        raise RPCError("Unable to contact slurm controller (connect failure)")


class _Job:
    def __init__(self, job_id: int) -> None:
        self.job_id = job_id

    def release(self) -> None:
        raise RPCError(f"job {self.job_id}: Invalid job id specified")


class FakeModule:
    Nodes = _Loader
    Jobs = _Loader
    Job = _Job


def test_pyslurm_errors_are_backend_errors() -> None:
    be = PyslurmBackend(module=FakeModule())
    with pytest.raises(BackendError, match="pyslurm snapshot failed: RPCError: Unable to contact"):
        be.snapshot()
    with pytest.raises(BackendError, match="pyslurm release failed: RPCError: job 7: Invalid job id"):
        be.release(7)


class _PJob:
    """The attributes of pyslurm 22.5's Job that the backend reads."""

    def __init__(self, state: str, gres_per_node: dict | None) -> None:
        self.state, self.gres_per_node = state, gres_per_node
        self.name, self.user_id, self.partition, self.priority = "j", 0, "gpu", 0
        self.state_reason, self.comment, self.submit_time, self.num_nodes = "JobHeldUser", "", 1, 1
        self.admin_comment = "placer:steer"
        self.allocated_nodes = self.required_nodes = None


class _PNode:
    state, reason = "IDLE", ""


class _Loads:
    def __init__(self, items: dict) -> None:
        self.items = items

    def load(self) -> dict:
        return self.items


class _Module:
    Nodes = _Loads({"gpu001": _PNode()})
    Jobs = _Loads({7: _PJob("PENDING", None), 8: _PJob("PENDING", {"gpu": 2})})


class _Squeue:
    def reservations(self) -> list:
        return []

    def jobs(self) -> list:
        from plugins.backend import SlurmJob

        return [SlurmJob(7, "j", "PENDING", gpus_per_job=4, gpu_model="h100"), SlurmJob(8, "j", "PENDING")]


def test_gpus_per_job_that_pyslurm_does_not_show_come_from_squeue() -> None:
    """pyslurm 22.5 shows no per-job GPU request: a held `--gpus=4` job looked like a CPU job, and apply
    released it unpinned. The CLI's squeue fills it in; a job pyslurm does show is left as it is."""
    jobs = {j.job_id: j for j in PyslurmBackend(module=_Module(), jobs_fallback=_Squeue()).snapshot().jobs}
    assert (jobs[7].gpus, jobs[7].gpu_model) == (4, "h100")
    assert jobs[8].gpus == 2
    alone = {j.job_id: j for j in PyslurmBackend(module=_Module()).snapshot().jobs}
    assert alone[7].gpus == 0


class _SqueueTimes:
    calls = 0

    def reservations(self) -> list:
        return []

    def jobs(self) -> list:
        from plugins.backend import SlurmJob

        _SqueueTimes.calls += 1
        return [SlurmJob(7, "j", "PENDING", dependency="afterok:3(unfulfilled)"),
                SlurmJob(8, "j", "PENDING", eligible_time=2_000_000_000)]


def test_dependency_and_begin_time_of_held_jobs_come_from_squeue() -> None:
    """A hold's reason (JobHeldUser) hides a dependency and a begin time; pyslurm's shapes for them are
    untested, so the backend takes squeue's for the jobs placer holds: apply then leaves job 7 (its
    dependency not met) and job 8 (its begin time to come) held, as with the CLI backend."""
    from plugins.backend import ineligible

    jobs = {j.job_id: j for j in PyslurmBackend(module=_Module(), jobs_fallback=_SqueueTimes()).snapshot().jobs}
    assert jobs[7].dependency == "afterok:3(unfulfilled)" and jobs[8].eligible_time == 2_000_000_000
    assert ineligible(jobs[7], 1_000_000_000).startswith("its dependency")
    assert ineligible(jobs[8], 1_000_000_000).startswith("its begin time")
    assert jobs[8].gpus == 2  # pyslurm's own GPUs stay


def test_no_squeue_call_when_no_pending_job_needs_one() -> None:
    class Running(_PJob):
        def __init__(self) -> None:
            super().__init__("RUNNING", {"gpu": 8})

    class Mod(_Module):
        Jobs = _Loads({9: Running()})

    _SqueueTimes.calls = 0
    PyslurmBackend(module=Mod(), jobs_fallback=_SqueueTimes()).snapshot()
    assert _SqueueTimes.calls == 0
