#!/usr/bin/env python3
"""Benchmark: the most CP-SAT could add by placing jointly the multi-node jobs that start together.

Issue 18 point 6 names joint placement of the jobs starting at the same moment as a place CP-SAT might
earn. Before building it into the scheduler, this measures its ceiling on placer's own replays: at each
instant where two or more multi-node jobs started and one of them landed beyond its leaf bound, a
CP-SAT model over leaf counts reassigns those jobs to the nodes they took plus every node still whole
free after that instant, and maximises the GPU-hours of the jobs within their bound. Each job gained is
counted as if its excess pairs fell to zero. The ceiling is optimistic: it may use nodes a waiting
head had reserved, and it ignores what the new assignment would do to the jobs after it.

    .venv/bin/python bench/joint_ceiling.py [--streams alibaba,superpod] [--seeds 1,2,3]
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from ortools.sat.python import cp_model

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scheduler import streams  # noqa: E402  (bench/ is sys.path[0] when run as a script)
from simulate import SHARED, add_bf_depth  # noqa: E402

from placer.sim import SCHEDULER_WORK_LIMIT, JobRecord, SimConfig, replay_planner, simulate  # noqa: E402
from placer.sim.metrics import pairs  # noqa: E402
from topology import Fabric  # noqa: E402


def _weight(r: JobRecord) -> float:
    """The excess-pairs metric's weight (placer/sim/metrics.py): GPU-hours."""
    start, end = r.ran()
    return r.job.gpus * (end - start) / 3600.0


def _pool(fabric: Fabric, placed: list[JobRecord], t: float, group: list[JobRecord]) -> np.ndarray:
    """Nodes whole free just after the pass at t, plus the nodes the group took."""
    busy = np.zeros(fabric.n_nodes, dtype=bool)
    for r in placed:
        start, end = r.ran()
        if start <= t < end:
            busy[[n for n, ids in r.alloc if len(ids)]] = True
    free = ~busy
    for r in group:
        free[[n for n, _ in r.alloc]] = True
    return free


def joint_within(fabric: Fabric, pool: np.ndarray, group: list[JobRecord]) -> list[bool]:
    """Which of the group's jobs a joint assignment of leaf counts puts within their bounds, maximising
    the GPU-hours within (CP-SAT; jobs of one GPU size per node share that size's nodes)."""
    m = cp_model.CpModel()
    gpus = np.asarray(fabric.node_gpus)
    leaf = np.asarray(fabric.node_leaf)
    used: dict[tuple[int, int], list[cp_model.IntVar]] = defaultdict(list)
    within = []
    for r in group:
        cap = np.bincount(leaf[pool & (gpus == r.size)], minlength=fabric.n_leaves)
        leaves = [int(lf) for lf in np.nonzero(cap)[0]]
        xs, ys = [], []
        for lf in leaves:
            x, y = m.new_int_var(0, int(cap[lf]), ""), m.new_bool_var("")
            m.add(x <= int(cap[lf]) * y)
            used[r.size, lf].append(x)
            xs.append(x)
            ys.append(y)
        m.add(sum(xs) == r.nodes_needed)
        b = m.new_bool_var("")
        m.add(sum(ys) <= r.leaf_bound).only_enforce_if(b)
        within.append(b)
    for (size, lf), xs in used.items():
        m.add(sum(xs) <= int(np.count_nonzero(pool & (gpus == size) & (leaf == lf))))
    m.maximize(sum(max(1, round(_weight(r))) * b for r, b in zip(group, within)))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = 20.0
    solver.parameters.num_workers = 1
    status = solver.solve(m)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return [r.leaves <= r.leaf_bound for r in group]  # the replay's own answer is always feasible
    return [bool(solver.value(b)) for b in within]


def ceiling(name: str, fabric: Fabric, records: list[JobRecord]) -> dict[str, float | int | str]:
    placed = [r for r in records if r.status == "placed"]
    multi = [r for r in placed if r.multi]
    by_start: dict[float, list[JobRecord]] = defaultdict(list)
    for r in multi:
        by_start[r.ran()[0]].append(r)
    groups = [g for g in by_start.values() if len(g) > 1]
    beyond = [g for g in groups if any(r.leaves > r.leaf_bound for r in g)]
    gained, gained_excess = 0, 0.0
    for g in beyond:
        now = [r.leaves <= r.leaf_bound for r in g]
        joint = joint_within(fabric, _pool(fabric, placed, g[0].ran()[0], g), g)
        gained += sum(joint) - sum(now)
        gained_excess += sum(_weight(r) * (r.cross_pairs - r.unavoidable_pairs)
                             for r, a, b in zip(g, now, joint) if b and not a)
    total = sum(_weight(r) * pairs(r.nodes_needed) for r in multi)
    at_bound = sum(r.leaves <= r.leaf_bound for r in multi)
    excess = sum(_weight(r) * (r.cross_pairs - r.unavoidable_pairs) for r in multi)
    return {"stream": name, "multi": len(multi), "together": sum(len(g) for g in groups),
            "beyond": sum(r.leaves > r.leaf_bound for r in multi),
            "beyond_together": sum(r.leaves > r.leaf_bound for g in groups for r in g),
            "groups": len(beyond), "gained": gained, "bound": at_bound / len(multi),
            "bound_ceiling": (at_bound + gained) / len(multi), "pairs": excess / total,
            "pairs_ceiling": (excess - gained_excess) / total}


def one(stream: str, seed: int, bf_depth: int) -> dict[str, float | int | str]:
    name, fabric, jobs = streams([stream], [seed])[0]
    cfg = SimConfig(planner=replay_planner(SCHEDULER_WORK_LIMIT, False), bf_depth=bf_depth)
    records, _ = simulate(fabric, jobs, "placer", cfg)
    return ceiling(name, fabric, records)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", default="alibaba,superpod")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--workers", type=int, default=2)
    add_bf_depth(ap)
    args = ap.parse_args()
    if not SHARED.exists():
        print("../shared/data/traces is absent: this benchmark needs the project's shared traces")
        return 1
    runs = [(s, int(seed), args.bf_depth) for s in args.streams.split(",") for seed in args.seeds.split(",")]
    print("| stream | multi-node jobs | started with another | beyond bound (of them together) | "
          "instants tried | jobs gained | at bound: now → ceiling | excess pairs: now → ceiling |")
    print("|---|---|---|---|---|---|---|---|")
    with ProcessPoolExecutor(args.workers) as pool:
        for c in pool.map(one, *zip(*runs)):
            print(f"| {c['stream']} | {c['multi']:,} | {c['together']:,} | {c['beyond']} ({c['beyond_together']}) | "
                  f"{c['groups']} | {c['gained']} | {c['bound']:.1%} → {c['bound_ceiling']:.1%} | "
                  f"{c['pairs']:.2%} → {c['pairs_ceiling']:.2%} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
