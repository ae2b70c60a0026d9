"""`placer reserve` (issue 20, point 3), worked by hand on the tiny preset (the running jobs of tests/test_why.py).

    leaves: p01-su01 gpu001-004, p01-su02 gpu005-008, p02-su01 gpu009-012, p02-su02 gpu013-016
    running: r1 on gpu001-003 (ends in 600 s), r2 on gpu009-012 (60 s), r3 on gpu005-007 (3,000 s),
             r4 on gpu013-015 (no known end); free: gpu004, gpu008, gpu016
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main
from placer.jobs import JobRequest
from placer.reserve import node_free_times, plan_reservation
from placer.validate import validate_reservation
from placer.why import Running
from topology import ClusterState
from topology.inventory import load_inventory_text

from .test_why import FABRIC, IX, NOW, RUNNING, state_and_running


def test_each_node_frees_at_the_last_known_end_on_it() -> None:
    s, running = state_and_running()
    got = node_free_times(IX, s, running, NOW) - NOW
    inf = float("inf")
    assert got.tolist() == [600] * 3 + [0] + [3000] * 3 + [0] + [60] * 4 + [inf] * 3 + [0]
    # two jobs sharing gpu004 (the later end counts), r2 past its expected end (free now, as far as we
    # know), gpu008 drained, and gpu016 half held by a job `running` does not list (no known end)
    s.allocate(3, range(4))
    s.allocate(3, range(4, 8))
    s.set_usable(7, False)
    s.allocate(15, range(4))
    more = [r if r.job_id != "r2" else Running("r2", NOW - 50, r.alloc) for r in running]
    more += [Running("a", NOW + 100, [(3, range(4))]), Running("b", NOW + 500, [(3, range(4, 8))])]
    got = node_free_times(IX, s, more, NOW) - NOW
    assert got[[3, 7, 8, 15]].tolist() == [500, inf, 0, inf]
    assert node_free_times(IX, ClusterState(FABRIC), [], NOW).tolist() == [NOW] * FABRIC.n_nodes


def test_within_a_unit_the_earliest_block_first_with_its_idle_cost() -> None:
    s, running = state_and_running()
    plans = plan_reservation(IX, s, running, 32, NOW, within=0)
    got = [(p.block, p.start - NOW, [FABRIC.node_names[n] for n in p.nodes], round(p.idle_gpu_hours, 4),
            [j for j, _ in p.must_end]) for p in plans]
    assert got == [("p02-su01", 60, ["gpu009", "gpu010", "gpu011", "gpu012"], 0.0, ["r2"]),
                   ("p01-su01", 600, ["gpu001", "gpu002", "gpu003", "gpu004"], round(8 * 600 / 3600, 4), ["r1"]),
                   ("p01-su02", 3000, ["gpu005", "gpu006", "gpu007", "gpu008"], round(8 * 3000 / 3600, 4), ["r3"])]


def test_within_a_pod_a_node_with_no_known_end_never_frees() -> None:
    """p02 would need gpu013-015, held by r4 with no end: only p01, when r3 ends; idle: gpu004 and gpu008
    for 3,000 s, gpu001-003 from 600 s."""
    s, running = state_and_running()
    plans = plan_reservation(IX, s, running, 64, NOW, within=1)
    assert [(p.block, p.start - NOW, p.leaves, p.leaf_bound) for p in plans] == [("p01-spine", 3000, 2, 2)]
    assert plans[0].idle_gpu_hours == pytest.approx((2 * 8 * 3000 + 3 * 8 * 2400) / 3600)


def test_start_after_and_a_job_nothing_holds() -> None:
    s, running = state_and_running()
    late = plan_reservation(IX, s, running, 32, NOW, within=0, start_after=NOW + 1000)
    assert [(p.block, p.start - NOW) for p in late] == [("p01-su01", 1000), ("p02-su01", 1000), ("p01-su02", 3000)]
    # at one start, the least idle first: gpu004 from now and gpu001-003 from 600 s, against gpu009-012 from 60 s
    assert late[0].idle_gpu_hours == pytest.approx((8 * 1000 + 3 * 8 * 400) / 3600)
    assert late[1].idle_gpu_hours == pytest.approx(4 * 8 * 940 / 3600)
    assert plan_reservation(IX, s, running, 8 * 20, NOW, within=None) == []


def test_the_validator_recomputes_every_plan_and_catches_a_wrong_one() -> None:
    s, running = state_and_running()
    ends = [r.row() for r in running]
    hero = JobRequest("hero", 32, exclusive=True)
    for p in plan_reservation(IX, s, running, 32, NOW, within=0):
        names = [FABRIC.node_names[n] for n in p.nodes]
        assert validate_reservation(FABRIC, s, hero, ends, names, p.start, NOW, p.idle_gpu_hours) == []
    good = ["gpu009", "gpu010", "gpu011", "gpu012"]
    assert "reports 1.000000 idle GPU-hours, recomputed 0.000000" in \
        " ".join(validate_reservation(FABRIC, s, hero, ends, good, NOW + 60, NOW, 1.0))
    early = validate_reservation(FABRIC, s, hero, ends, good, NOW + 30, NOW, 0.0)
    assert any("gpu009 is not a whole usable 8-GPU node free by the start" in b for b in early)
    spread = validate_reservation(FABRIC, s, hero, ends, ["gpu004", "gpu008", "gpu016", "gpu009"], NOW + 60, NOW,
                                  (8 * 60 * 3) / 3600)
    assert any("spans 4 leaves, the job's bound is 1" in b for b in spread)


def test_reserve_offline_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"job": jid, "status": "placed", "gpus": 8 * len(nodes), "nodes": [FABRIC.node_names[n] for n in nodes],
             "gpu_ids": {FABRIC.node_names[n]: list(range(8)) for n in nodes},
             **({"end": NOW + ends} if ends is not None else {})} for jid, (nodes, ends) in RUNNING.items()]
    snap = tmp_path / "now.json"
    snap.write_text(json.dumps({"schema": "placer.plan/v1", "fabric": "tiny", "placements": rows, "summary": {}}))
    base = ["reserve", "--gpus", "32", "--within", "su", "--inventory", "preset:tiny", "--state", str(snap),
            "--now", str(NOW), "--user", "alice", "--name", "hero1"]
    assert main(base) == 0
    out = capsys.readouterr().out
    assert "1. p02-su01: starts in 60 s on 1 leaves (bound 1), gpu[009-012]" in out
    assert "ReservationName=hero1 StartTime=" in out and "Nodes=gpu[009-012] Users=alice" in out
    assert main(base + ["--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [p["block"] for p in doc["plans"]] == ["p02-su01", "p01-su01", "p01-su02"]
    assert main(base + ["--apply"]) == 2  # --apply is live only
    assert main(["reserve", "--gpus", "999", "--inventory", "preset:tiny", "--state", str(snap)]) == 2
    assert "can ever hold 999 GPUs" in capsys.readouterr().err


def test_requeuing_the_cheapest_block_starts_now() -> None:
    """With start times known (r1 ran 3,000 s, r2 100 s, r3 10 s, r4 2 h): requeuing r3 frees p01-su02 now
    for 24 GPUs x 10 s of lost work; the validator recomputes it; --apply never requeues."""
    from dataclasses import replace as dc_replace

    from placer.reserve import plan_requeue

    s, running = state_and_running()
    began = {"r1": NOW - 3000, "r2": NOW - 100, "r3": NOW - 10, "r4": NOW - 7200}
    running = [dc_replace(r, start=began[r.job_id]) for r in running]
    p = plan_requeue(IX, s, running, 32, NOW, within=0)
    assert p is not None and p.block == "p01-su02 (requeuing)" and p.start == NOW
    assert [FABRIC.node_names[n] for n in p.nodes] == ["gpu005", "gpu006", "gpu007", "gpu008"]
    assert p.requeue == [("r3", pytest.approx(24 * 10 / 3600))] and p.idle_gpu_hours == 0
    rows = [r.row() for r in running]
    hero = JobRequest("hero", 32, exclusive=True)
    names = [FABRIC.node_names[n] for n in p.nodes]
    assert validate_reservation(FABRIC, s, hero, rows, names, p.start, NOW, 0.0, p.requeue) == []
    assert any("requeuing r3 loses" in b for b in validate_reservation(FABRIC, s, hero, rows, names, p.start, NOW,
                                                                       0.0, [("r3", 5.0)]))
    assert any("gpu005 is not a whole usable" in b for b in validate_reservation(FABRIC, s, hero, rows, names,
                                                                                 p.start, NOW, 0.0))
    # a job whose start is unknown is never requeued by a plan
    unknown = [dc_replace(r, start=None) if r.job_id == "r3" else r for r in running]
    q = plan_requeue(IX, s, unknown, 32, NOW, within=0)
    assert q is not None and "r3" not in [j for j, _ in q.requeue] and q.block == "p02-su01 (requeuing)"
    # nor is a node whose GPUs no running job holds (busy in Slurm, its job unseen): gpu008 taken whole
    # leaves p01-su02 three nodes, so the plan is another unit's (before 2026-12-07 it took gpu008, and
    # the validator refused the plan: exit 3)
    s.allocate(FABRIC.node_index["gpu008"], list(range(8)))
    b = plan_requeue(IX, s, running, 32, NOW, within=0)
    assert b is not None and "gpu008" not in [FABRIC.node_names[n] for n in b.nodes], b
    assert validate_reservation(FABRIC, s, hero, rows, [FABRIC.node_names[n] for n in b.nodes], b.start, NOW, 0.0,
                                b.requeue) == []


def test_the_cli_prints_the_requeue_alternative(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    began = {"r1": NOW - 3000, "r2": NOW - 100, "r3": NOW - 10, "r4": NOW - 7200}
    rows = [{"job": jid, "status": "placed", "gpus": 8 * len(nodes), "nodes": [FABRIC.node_names[n] for n in nodes],
             "gpu_ids": {FABRIC.node_names[n]: list(range(8)) for n in nodes}, "start": began[jid],
             **({"end": NOW + ends} if ends is not None else {})} for jid, (nodes, ends) in RUNNING.items()]
    snap = tmp_path / "now.json"
    snap.write_text(json.dumps({"schema": "placer.plan/v1", "fabric": "tiny", "placements": rows, "summary": {}}))
    assert main(["reserve", "--gpus", "32", "--within", "su", "--inventory", "preset:tiny", "--state", str(snap),
                 "--now", str(NOW), "--format", "json"]) == 0
    plans = json.loads(capsys.readouterr().out)["plans"]
    assert plans[-1]["block"] == "p01-su02 (requeuing)" and plans[-1]["scontrol_requeue"] == "scontrol requeue r3"
    assert plans[-1]["scontrol"].endswith("Flags=IGNORE_JOBS") and plans[-1]["lost_gpu_hours"] == 0.067


MIXED = """\
version: 1
node_types:
  small: {gpus: 4, features: [a]}
  big: {gpus: 8, gpu_model: h100, features: [b]}
nodes:
  - {names: "s[01-12]", type: small}
  - {names: "b[01-06]", type: big}
switches:
  - {name: top}
  - {name: l1, parent: top, nodes: "s[01-06],b[01-03]"}
  - {name: l2, parent: top, nodes: "s[07-12],b[04-06]"}
"""


def test_a_hero_run_on_mixed_sizes_and_with_constraints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Mixed node sizes (4-GPU nodes the most common): the planner and the validator take the same size
    (before, the validator checked 8-GPU nodes against a plan of 4-GPU ones and refused it: exit 3).
    --partition, --constraint, --gpu-model and --exclude keep the plan on the nodes they allow; what
    placer cannot honour is an input error (exit 2), never a plan that ignores it."""
    inv = tmp_path / "mixed.yaml"
    inv.write_text(MIXED)
    snap = tmp_path / "now.json"
    snap.write_text(json.dumps({"schema": "placer.plan/v1", "fabric": "mixed", "placements": [], "summary": {},
                                "partitions": {"gpu": "s[01-12],b[01-06]", "big": "b[02-06]"}}))
    base = ["reserve", "--inventory", str(inv), "--state", str(snap), "--now", "1000", "--format", "json"]

    def nodes(*args: str) -> list[str]:
        assert main([*base, *args]) == 0, capsys.readouterr().err
        return [p["nodes"] for p in json.loads(capsys.readouterr().out)["plans"]]

    assert nodes("--gpus", "16") == ["s[01-04]"]
    assert nodes("--gpus", "16", "--gpus-per-node", "8") == ["b[01-02]"]
    assert nodes("--gpus", "16", "--constraint", "b") == nodes("--gpus", "16", "--gpu-model", "H100") == ["b[01-02]"]
    assert nodes("--gpus", "16", "--partition", "big") == ["b[04-05]"]  # the leaf with more of its nodes
    assert nodes("--gpus", "24", "--constraint", "b", "--exclude", "b[01-02]") == ["b[04-06]"]
    assert nodes("--gpus", "16", "--constraint", "a|b", "--exclude", "s[01-12]") == ["b[01-02]"]
    for args, why in ((["--partition", "cpu"], "--partition cpu: partition cpu is not one Slurm lists"),
                      (["--constraint", "a*2"], "--constraint: --constraint 'a*2' (counts"),
                      (["--exclude", "x[1-2]"], "--exclude: not nodes of fabric"),
                      (["--constraint", "b", "--gpus-per-node", "4"], "of usable 4-GPU nodes the job may use")):
        assert main([*base, "--gpus", "16", *args]) == 2, args
        assert why in capsys.readouterr().err, args


def test_a_matching_or_is_planned_on_each_alternative(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`-C "[a|b]"`: every plan's nodes meet one alternative, each at its own node size (4-GPU `a` nodes,
    8-GPU `b` nodes), and each plan says which (before 2026-12-06 a matching OR was an input error)."""
    inv = tmp_path / "mixed.yaml"
    inv.write_text(MIXED)
    snap = tmp_path / "now.json"
    snap.write_text(json.dumps({"schema": "placer.plan/v1", "fabric": "mixed", "placements": [], "summary": {}}))
    base = ["reserve", "--inventory", str(inv), "--state", str(snap), "--now", "1000", "--gpus", "16",
            "--constraint", "[a|b]"]
    assert main([*base, "--format", "json"]) == 0, capsys.readouterr().err
    plans = json.loads(capsys.readouterr().out)["plans"]
    assert [(p["alternative"], p["nodes"]) for p in plans] == [("a", "s[01-04]"), ("b", "b[01-02]")]
    assert main([*base, "--gpus-per-node", "8", "--format", "json"]) == 0
    assert [(p["alternative"], p["nodes"]) for p in json.loads(capsys.readouterr().out)["plans"]] == [("b", "b[01-02]")]
    assert main(base) == 0
    assert "1. the fabric (-C a): starts now on 1 leaves" in capsys.readouterr().out


SPLIT = """\
version: 1
node_types:
  x: {gpus: 8, features: [x]}
  xy: {gpus: 8, features: [x, y]}
  y: {gpus: 8, features: [y]}
nodes:
  - {names: "n[01-03]", type: x}
  - {names: "n04", type: xy}
  - {names: "n[05-06]", type: y}
  - {names: "n[07-08]", type: x}
switches:
  - {name: top}
  - {name: l1, parent: top, nodes: "n[01-04]"}
  - {name: l2, parent: top, nodes: "n[05-08]"}
"""


def test_an_alternative_that_needs_more_leaves_than_the_best_is_not_offered(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`[x|y]` for 3 nodes: x fits in one leaf (its bound, the job's), y only across two. With two of x's
    nodes busy for an hour, y (n04-n06) could start now, but beyond the bound: every plan waits for x's
    leaf (a plan beyond the bound would reach the validator, which refuses it: exit 3)."""
    inv = tmp_path / "split.yaml"
    inv.write_text(SPLIT)
    busy = [{"job": "r1", "status": "placed", "gpus": 16, "nodes": ["n01", "n02"],
             "gpu_ids": {"n01": list(range(8)), "n02": list(range(8))}, "start": 0, "end": 4600}]
    snap = tmp_path / "now.json"
    snap.write_text(json.dumps({"schema": "placer.plan/v1", "fabric": "split", "placements": busy, "summary": {}}))
    assert main(["reserve", "--inventory", str(inv), "--state", str(snap), "--now", "1000", "--gpus", "24",
                 "--constraint", "[x|y]", "--format", "json"]) == 0, capsys.readouterr().err
    plans = json.loads(capsys.readouterr().out)["plans"]
    assert plans and all(p["leaves"] == 1 and p["alternative"] == "x" for p in plans)
    assert (plans[0]["starts_in_s"], plans[0]["nodes"], plans[0]["must_end"][0]["job"]) == (3600, "n[01-03]", "r1")


def test_the_validator_refuses_a_reservation_mixing_alternatives() -> None:
    inv, problems = load_inventory_text(MIXED)
    assert not problems
    hero = JobRequest("hero", 16, exclusive=True, constraint="[a|b]", gpus_per_node=4)
    s = ClusterState(inv)
    assert validate_reservation(inv, s, hero, [], ["s01", "s02", "s03", "s04"], 1000, 1000, 0.0) == []
    bad = validate_reservation(inv, s, hero, [], ["s01", "s02", "s03", "b01"], 1000, 1000, 0.0)
    assert any("do not all meet one alternative of --constraint '[a|b]'" in b for b in bad)


def test_the_requeue_plan_only_when_sooner_unless_asked_always() -> None:
    """gpu004 is free now: no requeue starts sooner, so `placer reserve` does not offer one; a benchmark
    timing every plan asks for it anyway (bench/admin.py), through the same merge."""
    from dataclasses import replace as dc_replace

    from placer.reserve import HeroChoice, plan_hero

    s, running = state_and_running()
    running = [dc_replace(r, start=NOW - 100) for r in running]
    one = [HeroChoice(None, None, 8)]
    plans = plan_hero(IX, s, running, 8, NOW, 0, None, 3, one)
    assert plans and plans[0].start == NOW and not any(p.block.endswith("(requeuing)") for p in plans)
    always = plan_hero(IX, s, running, 8, NOW, 0, None, 3, one, requeue_always=True)
    assert always[:-1] == plans and always[-1].block.endswith("(requeuing)")
