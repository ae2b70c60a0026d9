"""The admin's questions on a real Slurm lab (issue 20): `placer why` and `placer reserve --apply`.

The lab's fabric: four leaves of eight nodes, gpu[001-008] ... gpu[025-032]. Leaf 1 has one busy node
whose job has a 1-minute time limit (Slurm's EndTime); the other leaves have five busy nodes each
(10-minute limits). Each test leaves the lab clean: no jobs, no reservation."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from topology.hostlists import expand

from .conftest import LabHandle, running_nodes, wait_until

pytestmark = pytest.mark.lab

LEAF1 = [f"gpu{i:03d}" for i in range(1, 9)]


def _running(lab: LabHandle, *args: str) -> int:
    """Submit a filler and wait until it runs. Once, on a lab just started (26.05, in CI), a node's slurmd
    lost the first job's script before running it (`execve(): .../job00004/slurm_script: No such file or
    directory`) and the job ended at once: such a launch failure is the lab's, so the filler goes in again."""
    for attempt in range(3):
        job = lab.sbatch(*args)
        try:
            running_nodes(lab, job)
            return job
        except AssertionError:
            if attempt == 2 or lab.jobs_by_id().get(job) is not None:  # still pending: a real failure
                raise
    raise AssertionError("unreachable")


def _fragment(lab: LabHandle) -> int:
    short = _running(lab, "-J", "short", "-w", "gpu001", "--exclusive", "--gres=gpu:8", "--time=1",
                     "--comment=placer:off")
    for first in (9, 17, 25):
        _running(lab, "-J", f"long-{first}", "-N", "5", "-w", f"gpu[{first:03d}-{first + 4:03d}]", "--exclusive",
                 "--gres=gpu:8", "--time=10", "--comment=placer:off")
    return short


def _config(tmp_path: Path) -> str:
    """A site configuration of defaults only: the machine's own /etc/placer must not change the answer."""
    path = tmp_path / "placer.yaml"
    path.write_text("hold_s: 1800\n")
    return str(path)


def test_why_names_the_block_and_the_job_that_must_end(lab: LabHandle, daemon_factory, tmp_path: Path) -> None:
    """An 8-node job, held: it would start now over several leaves; the block within its bound that frees
    first is leaf 1, once the 1-minute job ends; within its hold, placer holds it for that block."""
    short = _fragment(lab)
    big = lab.sbatch("-J", "big", "-N", "8", "--exclusive", "--gres=gpu:8", "--hold", "--comment=placer:off")
    out = lab.placer("why", str(big), "--inventory", str(lab.inventory), "--config", _config(tmp_path),
                     "--format", "json")
    a = json.loads(out.stdout)
    assert a["verdict"] == "held-for-bound", a
    assert a["now"]["leaves"] > 1 and a["needs"]["leaf_bound"] == 1
    assert a["within_bound"]["nodes"] == "gpu[001-008]"
    assert [b["job"] for b in a["within_bound"]["blocked_by"]] == [str(short)]
    assert 0 < a["within_bound"]["in_s"] <= 60
    text = lab.placer("why", str(big), "--inventory", str(lab.inventory), "--config", _config(tmp_path)).stdout
    assert text.startswith(f"job {big} (64 GPUs): it would start now on") and f"once {short} (ends in" in text
    missing = lab.placer("why", "999999", "--inventory", str(lab.inventory), "--config", _config(tmp_path),
                         check=False)
    assert missing.returncode == 2 and "Slurm lists no job 999999" in missing.stderr


def test_reserve_apply_creates_the_reservation_small_jobs_go_around_and_the_hero_runs_in_it(
        lab: LabHandle, daemon_factory, tmp_path: Path) -> None:
    short = _fragment(lab)
    name = "placer-test-hero"
    # the run's constraints, live: the partition as sinfo lists it, an exclusion kept by every plan
    kept = lab.placer("reserve", "--gpus", "64", "--within", "su", "--inventory", str(lab.inventory), "--config",
                      _config(tmp_path), "--partition", "gpu", "--exclude", "gpu[001-008]", "--format", "json")
    for p in json.loads(kept.stdout)["plans"]:
        assert not set(expand(p["nodes"])) & set(LEAF1), p
    nope = lab.placer("reserve", "--gpus", "64", "--inventory", str(lab.inventory), "--config", _config(tmp_path),
                      "--partition", "nope", check=False)
    assert nope.returncode == 2 and "partition nope is not one Slurm lists" in nope.stderr
    try:
        out = lab.placer("reserve", "--gpus", "64", "--within", "su", "--inventory", str(lab.inventory),
                         "--config", _config(tmp_path), "--user", "root", "--name", name, "--duration-s", "3600",
                         "--apply", "--format", "json")
        plan = json.loads(out.stdout)["plans"][0]
        assert plan["nodes"] == "gpu[001-008]" and plan["must_end"][0]["job"] == str(short), plan
        assert "created" in plan, plan
        shown = lab.run("scontrol", "show", "reservation", name).stdout
        assert f"ReservationName={name}" in shown and "Nodes=gpu[001-008]" in shown, shown
        # a second hero run keeps off it (Slurm would refuse a reservation on its nodes at the same time)
        again = json.loads(lab.placer("reserve", "--gpus", "64", "--within", "su", "--inventory", str(lab.inventory),
                                      "--config", _config(tmp_path), "--format", "json").stdout)
        assert again["kept_off_reservations"] == [{"name": name, "nodes": "gpu[001-008]"}], again
        assert again["plans"] and all(not set(expand(p["nodes"])) & set(LEAF1) for p in again["plans"]), again
        # later jobs that would still run at the reservation's start go around it
        smalls = [lab.sbatch("-J", f"small-{k}", "--exclusive", "--gres=gpu:8", "--time=5", "--comment=placer:off")
                  for k in range(3)]
        for s in smalls:
            assert not set(running_nodes(lab, s)) & set(LEAF1)
        hero = lab.sbatch("-J", "hero", f"--reservation={name}", "-N", "8", "--exclusive", "--gres=gpu:8",
                          "--comment=placer:off")
        lab.run("scancel", str(short))  # an early finish: the hero still starts at the reservation's start
        assert running_nodes(lab, hero, timeout_s=120) == LEAF1
    finally:  # Slurm deletes a reservation only once no job runs in it
        lab.run("scancel", "--full", f"--reservation={name}", check=False)
        wait_until("the reservation deleted", lambda: lab.run("scontrol", "delete", f"ReservationName={name}",
                                                             check=False).returncode == 0
                   or "not found" in lab.run("scontrol", "show", "reservation", name, check=False).stdout
                   + lab.run("scontrol", "show", "reservation", name, check=False).stderr, timeout_s=60, every_s=1)
