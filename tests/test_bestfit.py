"""The `best-fit` baseline, decision by decision, on a small tree worked by hand.

Fabric (tiny preset, rails off), 8 GPUs per node:
            core
          /      \\
      pod p01     pod p02
       /   \\       /   \\
   leaf0  leaf1 leaf2  leaf3      4 nodes each: gpu[001-004] gpu[005-008] gpu[009-012] gpu[013-016]
"""
from __future__ import annotations

import pytest

from placer.eligibility import eligibility
from placer.index import index_for
from placer.jobs import JobRequest
from placer.sim import SimConfig, simulate
from placer.sim.bestfit import policy_best_fit
from topology import ClusterState
from topology.generate import design_for, generate

FABRIC = generate(design_for("tiny", rails=0))
IX = index_for(FABRIC)


def state_with(busy: dict[int, int]) -> ClusterState:
    """node index -> GPUs in use (the lowest indices)."""
    st = ClusterState(FABRIC)
    for n, k in busy.items():
        st.allocate(n, list(range(k)))
    return st


def choose(st: ClusterState, gpus: int, exclusive: bool = False) -> list[tuple[int, list[int]]]:
    job = JobRequest("j", gpus, exclusive=exclusive)
    alloc = policy_best_fit(IX, st, job, eligibility(IX, st, job))
    assert alloc is not None
    return alloc


def test_a_small_job_takes_the_partly_used_node_with_the_fewest_free_gpus() -> None:
    st = state_with({0: 6, 5: 3, 9: 7})  # free: gpu001 2, gpu006 5, gpu010 1
    assert choose(st, 2) == [(0, [6, 7])]
    assert choose(st, 3) == [(5, [3, 4, 5])]
    assert choose(st, 1) == [(9, [7])]


def test_with_no_partly_used_node_that_fits_a_whole_node_of_the_most_broken_leaf() -> None:
    st = state_with({0: 8, 1: 8, 4: 8, 9: 7})  # whole free per leaf: 2, 3, 4 (gpu010 has 1 free), 4
    assert choose(st, 4) == [(2, [0, 1, 2, 3])]


@pytest.mark.parametrize("busy,gpus,want", [
    ({0: 8, 1: 8, 4: 8, 5: 8, 8: 8, 13: 8}, 16, [2, 3]),  # whole free per leaf 2, 2, 3, 3: the first tightest
    ({0: 8, 1: 8, 4: 8, 5: 8, 8: 8, 13: 8}, 24, [9, 10, 11]),  # 3 fit leaf2 and leaf3: the lower, leaf2
    ({4: 8, 5: 8, 8: 8, 13: 8}, 48, [0, 1, 2, 3, 6, 7]),  # per leaf 4, 2, 3, 3: no leaf holds 6; pod p01 (4+2)
    # needs 2 leaves, as does p02 (3+3) but with more free: p01, fullest leaf first, then the tight one
])
def test_a_multi_node_job_takes_the_tightest_leaf_else_the_pod_needing_fewest_leaves(busy, gpus, want) -> None:
    alloc = choose(state_with(busy), gpus)
    assert [n for n, _ in alloc] == want and all(ids == list(range(8)) for _, ids in alloc)


def test_best_fit_replays_a_trace_and_keeps_small_jobs_off_whole_leaves() -> None:
    jobs = [JobRequest("s1", 2, submit_time=0, duration=100), JobRequest("s2", 2, submit_time=1, duration=100),
            JobRequest("big", 32, submit_time=2, duration=10)]
    recs, summary = simulate(FABRIC, jobs, "best-fit", SimConfig())
    by = {r.job.job_id: r for r in recs}
    assert [n for n, _ in by["s1"].alloc] == [n for n, _ in by["s2"].alloc]  # packed on one node
    assert by["big"].leaves == 1 and by["big"].start == 2  # a whole leaf was left for it
    assert summary["at_leaf_lower_bound"] == 1.0
