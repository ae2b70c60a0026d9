"""A replay is reproducible: CP-SAT stops on its own work units, not on the wall clock.

With a wall-clock limit, a solve that runs out of time returns whatever it had found by then, which
depends on the machine and its load; one benchmark stream's share at the bound moved by two points
between replays of the same code. Here the work limit is tiny so that many solves stop on it.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import placer.choose as choose
from cli.main import main
from placer.sim import SimConfig, replay_planner, simulate
from placer.tracegen import generate_trace, shape_from_tables
from placer.traces import write_csv_trace
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
    recs, _ = simulate(fabric, jobs, "placer-cpsat", SimConfig(planner=replay_planner(work_limit=0.0001)))
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
        code = main(["simulate", "--inventory", "preset:campus-16k", "--trace", str(trace), "--policy", "placer-cpsat",
                     "--out", str(tmp_path / name)])
        assert code == 0, capsys.readouterr().err
        docs.append(json.loads((tmp_path / name).read_text())["placements"])
    assert docs[0] == docs[1] and len(docs[0]) == 300
    code = main(["simulate", "--inventory", "preset:campus-16k", "--trace", str(trace), "--work-limit", "-1"])
    assert code == 2 and "--work-limit" in capsys.readouterr().err
