"""A fabric of disjoint trees (no common switch): accepted with one warning, as Slurm does, and no policy
ever places a job across trees (issue 19, point 3).

    tree A: spine-a over la1 (n[01-04]) and la2 (n[05-08])      tree B: spine-b over lb1 (n[09-12])
"""
from __future__ import annotations

from dataclasses import replace
from textwrap import dedent

import pytest

from placer.eligibility import eligibility
from placer.engine import place_one, plan
from placer.index import index_for
from placer.jobs import JobRequest
from placer.sim import SimConfig, simulate
from placer.sim.policies import make_policy
from placer.types import PlannerConfig
from placer.validate import validate
from topology import ClusterState, InventoryError, load_inventory_text
from topology.slurm_conf import import_slurm

INVENTORY = dedent("""\
    version: 1
    name: forest
    node_types:
      g8: {gpus: 8, gpu_model: h100}
    defaults: {type: g8}
    switches:
      - {name: spine-a}
      - {name: la1, parent: spine-a, nodes: "n[01-04]"}
      - {name: la2, parent: spine-a, nodes: "n[05-08]"}
      - {name: spine-b}
      - {name: lb1, parent: spine-b, nodes: "n[09-12]"}
    """)
FABRIC, WARNINGS = load_inventory_text(INVENTORY, "forest.yaml")
IX = index_for(FABRIC)
TREE_A = {f"n{i:02d}" for i in range(1, 9)}
TREE_B = {f"n{i:02d}" for i in range(9, 13)}


def busy(*names: str) -> ClusterState:
    st = ClusterState(FABRIC)
    for n in names:
        st.allocate(FABRIC.node_index[n], list(range(8)))
    return st


def test_the_forest_loads_with_one_warning_naming_the_trees() -> None:
    said = [w.message for w in WARNINGS if "disjoint" in w.message]
    assert len(said) == 1 and "2 disjoint trees" in said[0] and "'spine-a'" in said[0] and "'spine-b'" in said[0]
    assert IX.n_trees == 2 and FABRIC.n_nodes == 12


def test_a_job_larger_than_any_tree_is_unplaceable_and_says_why() -> None:
    p = place_one(IX, ClusterState(FABRIC), JobRequest("big", 80), PlannerConfig())
    assert p.status == "unplaceable"
    assert "2 disjoint trees" in p.reason and "largest holds only 8" in p.reason


def test_a_job_waits_rather_than_span_trees() -> None:
    """Four nodes free in each tree: a 6-node job fits the free count but no one tree, so it waits."""
    st = busy("n01", "n02", "n03", "n04")
    p = place_one(IX, st, JobRequest("six", 48), PlannerConfig())
    assert p.status == "pending" and p.leaf_lower_bound is None
    assert validate(FABRIC, st, [JobRequest("six", 48)], [p]) == []


@pytest.mark.parametrize("gpus,tree", [(48, TREE_A), (32, TREE_B), (16, TREE_B)])
def test_placer_keeps_a_job_in_the_tree_that_holds_it_best(gpus: int, tree: set[str]) -> None:
    """Six nodes fit only A; four fit one leaf anywhere (B: the fewest qualifying nodes, best fit)."""
    job = JobRequest("j", gpus)
    res = plan(FABRIC, ClusterState(FABRIC), [job])
    p = res.placements[0]
    assert p.status == "placed" and set(p.nodes) <= tree
    assert validate(FABRIC, ClusterState(FABRIC), [job], [p]) == []


@pytest.mark.parametrize("policy", ["placer", "placer-greedy", "slurm-tree", "slurm-tree-24.05", "best-fit",
                                    "first-fit"])
def test_no_policy_spans_trees(policy: str) -> None:
    st = busy("n01", "n02", "n03", "n04")
    choose = make_policy(policy, PlannerConfig())
    for gpus in (48, 40, 64):  # free: 4 in A, 4 in B; each of these needs more than one tree has
        job = JobRequest("j", gpus)
        alloc = choose(IX, st, job, eligibility(IX, st, job))
        assert alloc is None or len({IX.leaf_tree[FABRIC.node_leaf[n]] for n, _ in alloc}) == 1, policy


def test_the_validator_refuses_a_placement_across_trees() -> None:
    job = JobRequest("j", 16)
    p = place_one(IX, ClusterState(FABRIC), job, PlannerConfig())
    across = replace(p, nodes=["n08", "n09"], gpu_ids={"n08": list(range(8)), "n09": list(range(8))}, leaves=2)
    bad = validate(FABRIC, ClusterState(FABRIC), [job], [across], check_cost=False)
    assert any("spans disjoint trees" in b for b in bad)


TOPO = "SwitchName=s1 Nodes=n[01-04]\nSwitchName=s2 Nodes=n[05-08]\nSwitchName=top Switches=s[1-2]\n" \
       "SwitchName=s3 Nodes=n[09-10]\n"
SLURM = "NodeName=n[01-10] Gres=gpu:8\n"


def test_slurm_topology_conf_with_two_trees_imports_with_a_warning() -> None:
    """Slurm accepts it (and warns); so do we. --add-root still joins them into one tree."""
    fabric, warnings = import_slurm(TOPO, SLURM)
    assert index_for(fabric).n_trees == 2
    assert any("2 disjoint trees" in w.message and "'top'" in w.message and "'s3'" in w.message for w in warnings)
    joined, warnings = import_slurm(TOPO, SLURM, add_root="fabric")
    assert index_for(joined).n_trees == 1 and not any("disjoint" in w.message for w in warnings)


def test_a_cycle_is_still_an_error() -> None:
    with pytest.raises(InventoryError):
        load_inventory_text(INVENTORY.replace("{name: spine-a}", "{name: spine-a, parent: la1}"), "x")


@pytest.mark.parametrize("policy", ["placer", "best-fit", "slurm-tree"])
def test_a_replay_on_the_forest_starts_a_job_in_the_tree_left_free(policy: str) -> None:
    """Tree A is busy with a 64-GPU job; a 32-GPU job starts at once in tree B (the quick fit test counts
    every tree), and an 80-GPU job that no tree holds is never started."""
    jobs = [JobRequest("a", 64, submit_time=0, duration=1000), JobRequest("b", 32, submit_time=1, duration=10),
            JobRequest("huge", 80, submit_time=2, duration=10)]
    recs, _ = simulate(FABRIC, jobs, policy, SimConfig())
    by = {r.job.job_id: r for r in recs}
    assert by["b"].start == 1 and {FABRIC.node_names[n] for n, _ in by["b"].alloc} == TREE_B
    assert by["huge"].start is None
