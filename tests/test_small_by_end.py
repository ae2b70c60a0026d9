"""Placer's small-job rule by end time (PlannerConfig.small_jobs_by_end, on by default), worked by hand.

Tiny preset (rails off), 8-GPU nodes. Node 0 has 6 GPUs busy until 10 h from now, node 5 has 7 busy
until 1 h from now; every other node is whole free. By free GPUs alone a 1-GPU job goes to node 5 (it
leaves no GPU idle); by end time it goes where it delays a node's return to whole-free the least.
"""
from __future__ import annotations

import numpy as np
import pytest

from placer.engine import place_one
from placer.index import index_for
from placer.jobs import JobRequest
from placer.sim import SimConfig, simulate
from placer.types import PlannerConfig
from topology import ClusterState
from topology.generate import design_for, generate

FABRIC = generate(design_for("tiny", rails=0))
IX = index_for(FABRIC)
NOW, H = 1000.0, 3600.0


def state(with_ends: bool = True) -> ClusterState:
    st = ClusterState(FABRIC)
    st.allocate(0, list(range(6)))
    st.allocate(5, list(range(7)))
    if with_ends:
        ends = np.full(FABRIC.n_nodes, -np.inf)
        ends[0], ends[5] = NOW + 10 * H, NOW + 1 * H
        st.set_ends(ends, NOW)
    return st


def node_for(run_s: float | None, by_end: bool = True, with_ends: bool = True) -> str:
    job = JobRequest("j", 1, duration=run_s)
    p = place_one(IX, state(with_ends), job, PlannerConfig(solver="greedy", small_jobs_by_end=by_end))
    assert p.status == "placed"
    return p.nodes[0]


N0, N5 = FABRIC.node_names[0], FABRIC.node_names[5]


@pytest.mark.parametrize("run_s, node", [
    (0.5 * H, N5),   # ends before both: the node freeing soonest (node 0 stays for longer jobs)
    (2 * H, N0),     # would hold node 5 one hour longer; ends before node 0's job: no delay there
    (30 * H, N0),    # delays both: node 0 the least (20 h against 29 h)
])
def test_by_end_takes_the_node_it_delays_least(run_s: float, node: str) -> None:
    assert node_for(run_s) == node


@pytest.mark.parametrize("by_end, with_ends, run_s", [(False, True, 2 * H), (True, False, 2 * H), (True, True, None)])
def test_without_the_rule_or_the_ends_free_gpus_decide(by_end: bool, with_ends: bool, run_s: float | None) -> None:
    """Off, no ends known, or no run time: the node with the fewest free GPUs, as before 2026-12-05."""
    assert node_for(run_s, by_end, with_ends) == N5


def test_replay_with_the_rule_places_every_job_and_differs() -> None:
    """In a replay the simulator's clock and node ends feed the rule (it changes where small jobs go)."""
    rng = np.random.default_rng(3)
    jobs = [JobRequest(f"j{i}", int(rng.choice([1, 2, 4, 16])), submit_time=float(i * 60),
                       duration=float(rng.integers(600, 20 * 3600))) for i in range(300)]
    runs = {}
    for by_end in (False, True):
        cfg = SimConfig(planner=PlannerConfig(solver="greedy", small_jobs_by_end=by_end))
        recs, summary = simulate(FABRIC, jobs, "placer", cfg)
        assert summary["placed"] == len(jobs)
        runs[by_end] = [tuple(n for n, _ in r.alloc) for r in recs]
    assert runs[False] != runs[True]
