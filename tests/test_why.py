"""`placer why` (issue 20, point 2), worked by hand on the tiny preset, offline.

    leaves: p01-su01 gpu001-004, p01-su02 gpu005-008, p02-su01 gpu009-012, p02-su02 gpu013-016
    running: r1 on gpu001-003 (ends in 600 s), r2 on gpu009-012 (60 s), r3 on gpu005-007 (3,000 s),
             r4 on gpu013-015 (no known end); free: gpu004, gpu008, gpu016 (three leaves)
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main
from placer.index import index_for
from placer.jobs import JobRequest
from placer.timeline import HoldRule
from placer.types import PlannerConfig
from placer.why import Running, why
from topology import ClusterState
from topology.generate import design_for, generate

FABRIC = generate(design_for("tiny"))
IX = index_for(FABRIC)
NOW = 1_000_000.0
RUNNING = {"r1": ([0, 1, 2], 600.0), "r2": ([8, 9, 10, 11], 60.0), "r3": ([4, 5, 6], 3000.0), "r4": ([12, 13, 14], None)}


def state_and_running() -> tuple[ClusterState, list[Running]]:
    s = ClusterState(FABRIC)
    running = []
    for jid, (nodes, ends_in) in RUNNING.items():
        alloc = [(n, tuple(range(8))) for n in nodes]
        s.allocate_many(alloc)
        running.append(Running(jid, None if ends_in is None else NOW + ends_in, alloc))
    return s, running


def ask(gpus: int, submitted_ago: float = 0.0) -> dict:
    s, running = state_and_running()
    return why(IX, s, JobRequest("j", gpus, submit_time=NOW - submitted_ago), PlannerConfig(), running, NOW,
               HoldRule(1800, 0, 0))


def test_a_job_that_does_not_fit_waits_for_the_block_that_frees_first() -> None:
    a = ask(32)
    assert a["verdict"] == "waits" and a["needs"]["leaf_bound"] == 1
    assert a["within_bound"]["nodes"] == "gpu[009-012]" and a["within_bound"]["in_s"] == 60
    assert [b["job"] for b in a["within_bound"]["blocked_by"]] == ["r2"]
    assert "fits only 3 of 4 now" in a["sentence"] and "gpu[009-012] in 60 s, once r2 (ends in 60 s) end" in a["sentence"]


def test_a_job_that_would_span_leaves_is_held_for_its_bound() -> None:
    a = ask(24)
    assert a["now"]["status"] == "placed" and a["now"]["leaves"] == 3
    assert a["verdict"] == "held-for-bound" and a["within_bound"]["in_s"] == 60
    assert "placer holds it for its bound until 60 s from now (hold limit 1,800 s)" in a["sentence"]


def test_a_hold_that_would_leave_room_idle_with_nothing_pending_is_not_taken() -> None:
    """The 24-GPU job's 60 s hold leaves the 24 free GPUs idle: past hold_idle_s (30 s here) and with nothing
    else pending, apply starts it now and why says so; with 8 more GPUs pending, or the queue not known
    (None), the hold stands."""
    s, running = state_and_running()
    job = JobRequest("j", 24, submit_time=NOW)
    for queued, verdict in ((0, "starts-beyond-bound"), (8, "held-for-bound"), (None, "held-for-bound")):
        others = None if queued is None else (lambda room, q=queued: q)
        a = why(IX, s.copy(), job, PlannerConfig(), running, NOW, HoldRule(1800, 0, 0, idle_s=30), queued_others=others)
        assert (a["verdict"], a["hold_idles"]) == (verdict, verdict != "held-for-bound"), queued
        assert ("the GPUs free now would stay idle meanwhile (24 free, 0 asked for by the other pending jobs; placer "
                "takes no such hold over 30 s)" in a["sentence"]) == (queued == 0), a["sentence"]
        assert a["idle"] == {"free_gpus": 24, "others_ask": queued, "floor_s": 30}


def test_past_its_hold_it_starts_beyond_the_bound() -> None:
    a = ask(24, submitted_ago=10_000)
    assert a["verdict"] == "starts-beyond-bound" and "after its hold limit" in a["sentence"]


def test_a_job_that_fits_within_its_bound_now() -> None:
    a = ask(8)
    assert a["verdict"] == "fits-now" and a["now"]["leaves"] == 1 and a["within_bound"] is None


def test_a_job_no_node_could_ever_hold() -> None:
    a = ask(8 * 17)
    assert a["verdict"] == "unplaceable" and "can never start here" in a["sentence"]


def test_why_offline_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"job": jid, "status": "placed", "gpus": 8 * len(nodes), "nodes": [FABRIC.node_names[n] for n in nodes],
             "gpu_ids": {FABRIC.node_names[n]: list(range(8)) for n in nodes},
             **({"end": NOW + ends} if ends is not None else {})} for jid, (nodes, ends) in RUNNING.items()]
    snap = tmp_path / "now.json"
    snap.write_text(json.dumps({"schema": "placer.plan/v1", "fabric": "tiny", "placements": rows, "summary": {}}))
    jobs = tmp_path / "queue.yaml"
    jobs.write_text(f"jobs:\n  - {{id: mid, gpus: 24, submit_time: {NOW}}}\n")
    argv = ["why", "mid", "--inventory", "preset:tiny", "--state", str(snap), "--jobs", str(jobs), "--now", str(NOW)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("job mid (24 GPUs): it would start now on 3 leaves (bound 1)")
    assert "    job r2 on gpu[009-011], ends in 60 s" in out  # the three nodes the block needs
    assert main(argv + ["--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["verdict"] == "held-for-bound"
    assert main(["why", "nope", "--inventory", "preset:tiny", "--state", str(snap), "--jobs", str(jobs)]) == 2
    assert "has no job nope" in capsys.readouterr().err


def test_why_offline_counts_the_other_jobs_of_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With hold_idle_s 30 s: the 24-GPU job alone in the file would idle the 24 free GPUs for 60 s, and
    starts now; with an 8-GPU job beside it (the job itself not counted), the hold stands; with one that no
    node of the room could take (a GPU model the fabric has not), it starts now (before 2026-12-07 every
    other job of the file counted)."""
    rows = [{"job": jid, "status": "placed", "gpus": 8 * len(nodes), "nodes": [FABRIC.node_names[n] for n in nodes],
             "gpu_ids": {FABRIC.node_names[n]: list(range(8)) for n in nodes},
             **({"end": NOW + ends} if ends is not None else {})} for jid, (nodes, ends) in RUNNING.items()]
    snap = tmp_path / "now.json"
    snap.write_text(json.dumps({"schema": "placer.plan/v1", "fabric": "tiny", "placements": rows, "summary": {}}))
    config = tmp_path / "placer.yaml"
    config.write_text("hold_idle_s: 30\nhold_idle_share: 0\n")
    for extra, verdict, asked in (("", "starts-beyond-bound", 0), ("  - {id: other, gpus: 8}\n", "held-for-bound", 8),
                                  ("  - {id: other, gpus: 8, gpu_model: a100}\n", "starts-beyond-bound", 0)):
        jobs = tmp_path / "queue.yaml"
        jobs.write_text(f"jobs:\n  - {{id: mid, gpus: 24, submit_time: {NOW}}}\n{extra}")
        assert main(["why", "mid", "--inventory", "preset:tiny", "--state", str(snap), "--jobs", str(jobs),
                     "--now", str(NOW), "--config", str(config), "--format", "json"]) == 0
        a = json.loads(capsys.readouterr().out)
        assert a["verdict"] == verdict and a["idle"]["others_ask"] == asked, a


def test_why_places_a_small_job_by_end_time_as_apply_does(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A 2-GPU job of an hour: gpu008 has the fewest free GPUs (2; its job ends in 60 s), gpu004 has 3 (its
    job ends in 3,000 s). By end time (the default, as `placer apply` places it) it goes to gpu004, which it
    delays 600 s instead of 3,540 s; with `small_jobs_by_end: false`, to gpu008."""
    rows = [{"job": jid, "status": "placed", "gpus": len(ids), "nodes": [node], "gpu_ids": {node: ids}, "end": NOW + ends}
            for jid, node, ids, ends in (("a", "gpu004", [0, 1, 2, 3, 4], 3000.0), ("b", "gpu008", list(range(6)), 60.0))]
    snap = tmp_path / "now.json"
    snap.write_text(json.dumps({"schema": "placer.plan/v1", "fabric": "tiny", "placements": rows, "summary": {}}))
    jobs = tmp_path / "queue.yaml"
    jobs.write_text(f"jobs:\n  - {{id: small, gpus: 2, time_limit_s: 3600, submit_time: {NOW}}}\n")
    off = tmp_path / "placer.yaml"
    off.write_text("small_jobs_by_end: false\n")
    argv = ["why", "small", "--inventory", "preset:tiny", "--state", str(snap), "--jobs", str(jobs), "--now", str(NOW),
            "--format", "json"]
    for extra, node in (([], "gpu004"), (["--config", str(off)], "gpu008")):
        assert main(argv + extra) == 0
        assert json.loads(capsys.readouterr().out)["now"]["nodes"] == node
