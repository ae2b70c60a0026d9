"""Rank orders for tp x pp x dp jobs (hand-computed costs), hot spares, and failed-node replacement.

Fabric for the hand-computed cases: two leaves whose node names interleave, as racks often do:

        top
       /    \\
     l1      l2
   a1 a3    a2 a4        4 GPUs per node, all-to-all NVLink inside a node
"""
from __future__ import annotations

import json
import random
from pathlib import Path

from cli.main import main
from placer import JobRequest, PlannerConfig, plan
from placer.index import spare_mask
from placer.jobs import jobs_from_list
from placer.ranks import Parallelism, edges, name_order_layout, placer_layout, traffic
from placer.replace import choose_replacements
from placer.validate import validate
from topology import ClusterState, load_inventory_text
from topology.generate import design_for, generate

from .conftest import dedent

FABRIC, _ = load_inventory_text(dedent("""
    version: 1
    node_types: {g4: {gpus: 4}}
    defaults: {type: g4}
    nodes:
      - {names: "a[1-4]"}
    switches:
      - {name: top}
      - {name: l1, parent: top, nodes: "a1,a3"}
      - {name: l2, parent: top, nodes: "a2,a4"}
    """))
ALL = {n: [0, 1, 2, 3] for n in ("a1", "a2", "a3", "a4")}


def test_edge_counts() -> None:
    """tp=4 rings: 4 edges x 4 groups; pp=2: 1 edge per (dp, tp) = 8; dp=2 rings: 1 edge per (pp, tp) = 8."""
    par = Parallelism(4, 2, 2)
    kinds = {"tp": 0, "pp": 0, "dp": 0}
    for a, b, _ in edges(par):
        ta, tb = a % 4, b % 4
        if ta != tb:
            kinds["tp"] += 1
        elif (a // 4) % 2 != (b // 4) % 2:
            kinds["dp"] += 1
        else:
            kinds["pp"] += 1
    assert kinds == {"tp": 16, "pp": 8, "dp": 8}


def test_hand_computed_costs_with_weights() -> None:
    """Name order a1, a2, a3, a4 alternates leaves: every DP edge crosses (8 edges x w_dp 2 = 16).
    placer keeps DP groups in a leaf and lets the cheaper PP edges cross (8 x 1 = 8)."""
    par = Parallelism(4, 2, 2, w_tp=1, w_pp=1, w_dp=2)
    name = traffic(FABRIC, name_order_layout(FABRIC, ALL, par), par)
    ours = traffic(FABRIC, placer_layout(FABRIC, ALL, par), par)
    assert name == {"nvlink": 16.0, "cross_leaf": 16.0, "cross_pod": 0.0, "cost": 16.0}
    assert ours == {"nvlink": 16.0, "cross_leaf": 8.0, "cross_pod": 0.0, "cost": 8.0}
    par_pp = Parallelism(4, 2, 2, w_pp=3)  # now pipelines are the heavy part: keep them in a leaf
    assert traffic(FABRIC, placer_layout(FABRIC, ALL, par_pp), par_pp)["cross_leaf"] == 8.0


def test_tp_groups_stay_inside_a_node_and_ranks_take_gpus_in_order() -> None:
    par = Parallelism(4, 2, 2)
    layout = placer_layout(FABRIC, ALL, par)
    for g in range(4):  # TP group g = ranks 4g..4g+3
        assert len({layout[4 * g + t][0] for t in range(4)}) == 1
        assert [layout[4 * g + t][1] for t in range(4)] == [0, 1, 2, 3]


def test_jobs_with_parallelism() -> None:
    problems: list = []
    jobs = jobs_from_list([{"job_id": "a", "gpus": 16, "tp": 4, "pp": 2, "dp": 2, "weights": {"dp": 2}},
                           {"job_id": "b", "gpus": 16, "tp": 4, "pp": 2, "dp": 3},
                           {"job_id": "c", "gpus": 16, "tp": 4, "dp": 4, "weights": {"xx": 1}}], problems)
    assert [j.job_id for j in jobs] == ["a"] and jobs[0].weights == (1.0, 1.0, 2.0)
    text = " | ".join(p.message for p in problems)
    assert "tp x pp x dp = 4 x 2 x 3 = 24, but the job asks for 16 GPUs" in text and "expected {tp: W" in text
    result = plan(FABRIC, ClusterState(FABRIC), jobs)
    p = result.placements[0]
    assert p.ranks is not None and p.rank_traffic is not None and p.name_order_traffic is not None
    assert p.status == "placed" and len(p.ranks) == 16 and p.rank_traffic["cross_leaf"] == 8.0
    assert p.name_order_traffic["cross_leaf"] == 16.0


def test_hot_spares_are_kept_out_of_plans() -> None:
    f = generate(design_for("tiny", rails=0))
    cfg = PlannerConfig(spares_per_su=1)
    spares = {f.node_names[i] for i in spare_mask(__import__("placer.index", fromlist=["index_for"]).index_for(f), 1).nonzero()[0]}
    assert spares == {"gpu004", "gpu008", "gpu012", "gpu016"}
    rng = random.Random(3)
    jobs = [JobRequest(f"j{i}", rng.choice([1, 8, 16, 24])) for i in range(20)]
    state = ClusterState(f)
    result = plan(f, state, jobs, cfg)
    assert not spares & {n for p in result.placements for n in p.nodes}
    assert validate(f, state, jobs, result.placements, reserved=spares) == []
    assert any("kept as hot spares" in p.reason for p in result.placements)


def test_replacement_prefers_same_leaf_then_pod_and_spares() -> None:
    """tiny, rails off: p01-su01 = gpu[001-004], p01-su02 = gpu[005-008], p02 = gpu[009-016]."""
    f = generate(design_for("tiny", rails=0))
    state = ClusterState(f)
    job = ["gpu001", "gpu002", "gpu005", "gpu006"]
    for n in job:
        state.allocate(f.node_index[n], range(8))
    state.set_usable(f.node_index["gpu002"], False)
    r = choose_replacements(f, state, job, ["gpu002"], spares_per_su=1)
    assert (r.replacements[0].node, r.replacements[0].why) == ("gpu004", "hot spare in the same leaf")
    r = choose_replacements(f, state, job, ["gpu002"], spares_per_su=0)
    assert r.replacements[0].node == "gpu003" and r.nodes == ["gpu001", "gpu003", "gpu005", "gpu006"]
    for n in ("gpu003", "gpu004"):  # the leaf is full: the same pod next
        state.allocate(f.node_index[n], range(8))
    r = choose_replacements(f, state, job, ["gpu002"])
    assert r.replacements[0].node == "gpu007" and "same level-1 group" in r.replacements[0].why
    for n in ("gpu007", "gpu008"):
        state.allocate(f.node_index[n], range(8))
    r = choose_replacements(f, state, job, ["gpu002"])
    assert r.replacements[0].node == "gpu009" and "elsewhere" in r.replacements[0].why


def test_ranks_and_replace_commands_on_a_plan(tmp_path: Path, capsys) -> None:
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text("- {job_id: llm, gpus: 64, tp: 8, pp: 2, dp: 4}\n")
    plan_file = tmp_path / "plan.json"
    assert main(["plan", "--inventory", "preset:tiny", "--jobs", str(jobs), "--format", "json", "-o", str(plan_file)]) == 0
    hostfile = tmp_path / "hosts"
    assert main(["ranks", "--inventory", "preset:tiny", "--plan", str(plan_file), "--job", "llm", "--tp", "8",
                 "--pp", "2", "--dp", "4", "--hostfile", str(hostfile)]) == 0
    out = capsys.readouterr().out
    assert "64 ranks (tp 8 x pp 2 x dp 4) on 8 nodes" in out and "crossing leaves" in out
    assert len(hostfile.read_text().splitlines()) == 64
    nodes = json.loads(plan_file.read_text())["placements"][0]["nodes"]
    assert main(["replace", "--inventory", "preset:tiny", "--plan", str(plan_file), "--job", "llm", "--failed",
                 nodes[0], "--tp", "8", "--pp", "2", "--dp", "4", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    new = doc["replacements"][0]["node"]
    assert new not in nodes and len(doc["ranks"]) == 64 and nodes[0] not in {r["node"] for r in doc["ranks"]}
    assert main(["ranks", "--inventory", "preset:tiny", "--plan", str(plan_file), "--job", "llm", "--tp", "8"]) == 2
    assert "tp x pp x dp = 8, but the job has 64 GPUs" in capsys.readouterr().err
    assert main(["replace", "--inventory", "preset:tiny", "--plan", str(plan_file), "--job", "llm", "--failed",
                 "gpu999"]) == 2
    assert "not nodes of this job: gpu999" in capsys.readouterr().err
