"""A replay is reproducible: CP-SAT stops on its own work units, not on the wall clock.

With a wall-clock limit, a solve that runs out of time returns whatever it had found by then, which
depends on the machine and its load; one benchmark stream's share at the bound moved by two points
between replays of the same code. Here the work limit is tiny so that many solves stop on it.
"""
from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import placer.choose as choose
from cli.config import SiteConfig
from cli.main import main
from placer import JobRequest, place_one
from placer.index import index_for
from placer.sim import SimConfig, replay_planner, simulate
from placer.tracegen import generate_trace, shape_from_tables
from placer.traces import write_csv_trace
from topology import ClusterState
from topology.generate import design_for, generate

SHAPE = shape_from_tables([(1, 60), (2, 10), (4, 8), (16, 8), (48, 6), (96, 4), (200, 2)],
                          [(0.5, 600.0), (0.9, 7200.0), (0.99, 36000.0)])
SOLVE = choose.solve_leaf_choice


def _replay(statuses: Counter[str], monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    fabric = generate(design_for("campus-16k"))
    jobs = generate_trace(SHAPE, fabric.total_gpus, fabric.n_nodes, 8, 600, 1.0, seed=3)
    def counted(*args: Any, **kwargs: Any) -> Any:
        res = SOLVE(*args, **kwargs)
        statuses[res.status] += 1
        return res

    monkeypatch.setattr(choose, "solve_leaf_choice", counted)
    recs, _ = simulate(fabric, jobs, "placer", SimConfig(planner=replay_planner(work_limit=0.0001)))
    return [(r.job.job_id, r.start, tuple(map(tuple, r.alloc)), r.leaves) for r in recs]


def test_two_replays_with_a_work_limit_give_the_same_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    first: Counter[str] = Counter()
    second: Counter[str] = Counter()
    a = _replay(first, monkeypatch)
    b = _replay(second, monkeypatch)
    # the limit is really what stopped the solves (else this would test nothing)
    assert first["FEASIBLE"] + first["UNKNOWN"] >= 5, first
    assert first == second
    assert a == b


def test_a_work_limit_of_zero_on_the_command_line_means_the_wall_clock() -> None:
    assert replay_planner(None).cpsat_work_limit is None
    assert replay_planner(None).time_limit_s == 0.01
    cfg = replay_planner()
    assert cfg.cpsat_work_limit is not None and cfg.time_limit_s >= 0.5  # the wall clock only as a safety net


def test_the_simulate_command_replays_the_same_plan_twice(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    fabric = generate(design_for("campus-16k"))
    trace = tmp_path / "t.csv"
    trace.write_text(write_csv_trace(generate_trace(SHAPE, fabric.total_gpus, fabric.n_nodes, 8, 300, 1.0, seed=5)))
    docs = []
    for name in ("a.json", "b.json"):
        code = main(["simulate", "--inventory", "preset:campus-16k", "--trace", str(trace), "--policy", "placer",
                     "--out", str(tmp_path / name)])
        assert code == 0, capsys.readouterr().err
        docs.append(json.loads((tmp_path / name).read_text())["placements"])
    assert docs[0] == docs[1] and len(docs[0]) == 300
    code = main(["simulate", "--inventory", "preset:campus-16k", "--trace", str(trace), "--work-limit", "-1"])
    assert code == 2 and "--work-limit" in capsys.readouterr().err


def test_placer_apply_chooses_as_the_replays_policy_placer() -> None:
    """`placer apply` and `placer why` (the site config's planner, defaults) choose where a job goes as the
    benchmark's policy placer does: CP-SAT on the same work limit, so the same answer on a busy fabric."""
    live, replay = SiteConfig().planner(), replace(replay_planner(), solver="cpsat")  # as make_policy("placer")
    assert (live.solver, live.cpsat_work_limit, live.small_jobs_by_end) == \
        (replay.solver, replay.cpsat_work_limit, replay.small_jobs_by_end)
    fabric = generate(design_for("campus-16k"))
    ix, rng, solvers = index_for(fabric), random.Random(4), Counter[str]()
    state = ClusterState(fabric)
    for n in range(fabric.n_nodes):
        if rng.random() < 0.55:
            state.allocate(n, list(range(int(fabric.node_gpus[n]))))
    for i, nodes in enumerate((12, 24, 40, 64, 96)):
        job = JobRequest(f"j{i}", gpus=8 * nodes, gpus_per_node=8)
        a, b = place_one(ix, state, job, live), place_one(ix, state, job, replay)
        assert a.status == b.status == "placed"
        assert a.nodes == b.nodes and a.solver == b.solver
        solvers[a.solver.split(" ")[0]] += 1
    assert solvers["cp-sat"] >= 1, solvers  # CP-SAT really chose some of them (else this tests nothing)
