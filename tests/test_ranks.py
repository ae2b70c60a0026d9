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


def test_a_replacement_meets_the_jobs_constraints() -> None:
    """tests/test_constraints.py's fabric: l1 = n1 a, n2 a, n3 b, n4 b; l2 = n5 a, n6 b, n7 b, n8 c.
    A job on n1 and n2 loses n2: without constraints n3 (same leaf); with its features, matching-OR
    alternative, --exclude and partition, only nodes that meet them, or none, said so."""
    from placer.index import index_for
    from placer.replace import allowed_nodes

    from .test_constraints import FABRIC as F

    ix = index_for(F)
    state = ClusterState(F)
    for n in ("n1", "n2"):
        state.allocate(F.node_index[n], range(8))
    state.set_usable(F.node_index["n2"], False)

    def pick(job: JobRequest) -> tuple[str | None, str]:
        allowed = allowed_nodes(ix, state, job, ["n1"])
        assert allowed is not None
        r = choose_replacements(F, state, ["n1", "n2"], ["n2"], allowed=allowed).replacements[0]
        return r.node, r.why

    assert choose_replacements(F, state, ["n1", "n2"], ["n2"]).replacements[0].node == "n3"
    assert pick(JobRequest("j", 16, gpus_per_node=8))[0] == "n3"
    assert pick(JobRequest("j", 16, gpus_per_node=8, constraint="[a|b]")) == ("n5", "free node in the same level-1 group")
    assert pick(JobRequest("j", 16, gpus_per_node=8, features=("a",)))[0] == "n5"
    assert pick(JobRequest("j", 16, gpus_per_node=8, partition_nodes=("n1", "n2", "n4", "n6")))[0] == "n4"
    assert pick(JobRequest("j", 16, gpus_per_node=8, exclude=("n3", "n4")))[0] == "n5"
    none = pick(JobRequest("j", 16, gpus_per_node=8, features=("a",), exclude=("n5",)))
    assert none == (None, "no whole free 8-GPU node left that meets the job's constraints")
    # a drained node that would meet them is not offered
    state.set_usable(F.node_index["n5"], False)
    assert pick(JobRequest("j", 16, gpus_per_node=8, constraint="[a|b]"))[0] is None
    # its other node meets none of them by the inventory: cannot be checked
    assert allowed_nodes(ix, state, JobRequest("j", 16, gpus_per_node=8, features=("b",)), ["n1"]) is None


def test_replace_apply_keeps_the_jobs_constraints_or_changes_nothing(monkeypatch, capsys) -> None:
    """Live `replace --apply` on a requeued job (tiny; Slurm faked at the backend): its --exclude is kept
    (gpu003 and gpu004 excluded: the same pod next, gpu005), nodes another pending job will start on are
    taken last, and a job whose constraint placer does not honour (counts) is shown with the reason and
    nothing is applied (exit 2)."""
    import cli.ranks_cmds
    from plugins.backend import SlurmJob, SlurmNode, SlurmSnapshot

    f = generate(design_for("tiny", rails=0))
    calls: list[tuple] = []

    class Fake:
        name = "fake"

        def __init__(self, job: SlurmJob, others: tuple[SlurmJob, ...]) -> None:
            self.jobs = (job, *others)

        def snapshot(self) -> SlurmSnapshot:
            nodes = tuple(SlurmNode(n, "drain" if n == "gpu002" else "up", partitions=("gpu",)) for n in f.node_names)
            return SlurmSnapshot(nodes, self.jobs)

        def pin(self, job_id: int, nodes: str, num_nodes: int) -> None:
            calls.append(("pin", job_id, nodes, num_nodes))

        def start_now(self, job_id: int) -> None:
            calls.append(("start_now", job_id))

        def release(self, job_id: int) -> None:
            calls.append(("release", job_id))

    def run(others: tuple[SlurmJob, ...] = (), **kw) -> int:
        job = SlurmJob(7, "train", "PENDING", partition="gpu", node_count=2, required_nodes=("gpu001", "gpu002"),
                       gpus_per_node=8, reason="JobHeldUser", priority=0, **kw)
        monkeypatch.setattr(cli.ranks_cmds, "choose_backend", lambda *a: Fake(job, others))
        return main(["replace", "--inventory", "preset:tiny", "--job", "7", "--failed", "gpu002", "--apply"])

    assert run(excluded_nodes=("gpu003", "gpu004")) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "gpu002 -> gpu005: free node in the same level-1 group" in out and "applied" in out
    assert calls[0] == ("pin", 7, "gpu[001,005]", 2)
    calls.clear()
    # gpu003 is named by another pending job's node list (a pin): the leaf's gpu004 instead, and only when
    # nothing else is left, a named node, said so
    pinned = SlurmJob(9, "pinned", "PENDING", partition="gpu", priority=1, node_count=1, required_nodes=("gpu003",))
    assert run(others=(pinned,)) == 0
    assert "gpu002 -> gpu004: free node in the same leaf" in capsys.readouterr().out
    calls.clear()
    everything = SlurmJob(9, "pinned", "PENDING", partition="gpu", priority=1, node_count=15,
                          required_nodes=tuple(n for n in f.node_names if n not in ("gpu001", "gpu002")))
    assert run(others=(everything,)) == 0
    assert "gpu002 -> gpu003: free node in the same leaf, named by a pending job's node list" in capsys.readouterr().out
    calls.clear()
    assert run(features="a*2") == 2
    err = capsys.readouterr().err
    assert "the job's constraints were not checked: --constraint 'a*2' (counts" in err and "nothing applied" in err
    assert calls == []


def test_a_replacement_on_a_fabric_of_mixed_sizes() -> None:
    """A job on two 4-GPU nodes of a fabric whose largest nodes have 8 (its size not given): its other
    node meets its constraints whatever the size, and the replacement is a 4-GPU node like the failed one."""
    from placer.index import index_for
    from placer.replace import allowed_nodes

    from .test_reserve import MIXED

    f, _ = load_inventory_text(MIXED)
    state = ClusterState(f)
    for n in ("s01", "s02"):
        state.allocate(f.node_index[n], range(4))
    state.set_usable(f.node_index["s02"], False)
    for job in (JobRequest("j", 8), JobRequest("j", 8, exclude=("s03",))):
        allowed = allowed_nodes(index_for(f), state, job, ["s01"])
        assert allowed is not None
        r = choose_replacements(f, state, ["s01", "s02"], ["s02"], allowed=allowed).replacements[0]
        assert r.node == ("s03" if not job.exclude else "s04"), r
