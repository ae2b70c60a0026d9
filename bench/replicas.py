#!/usr/bin/env python3
"""Benchmark: how far one replay of a stream can be trusted, and which of two policies wins over many.

Issue 18's streams (bench/scheduler.py's `streams`): the 1,024-GPU SuperPOD stream (8,000
Alibaba-shaped jobs, load 1.0, sizes as generated) holds full-fabric jobs (1,024 GPUs) and 7-day
jobs: its mean wait is decided by a few drains; the Alibaba stream on campus-16k (30,000 jobs,
multi-node sizes doubled) is decided by many jobs, but one different early choice still changes
everything after it. Each seed is replayed as generated (replica 0) and with every arrival moved
later by a random 0-60 s (replicas 1..K, seeded): a policy's figures over the replicas show what is
the policy and what is the draw. Policies as sites run them (FCFS + EASY): placer's default
(CP-SAT choosing, `small_jobs_by_end` and `hold_from_room` on), placer without `small_jobs_by_end`
(`placer-by-end`), without `hold_from_room` (`placer-from-room`) or without both
(`placer-by-end-from-room`); placer-greedy (the same scheduler taking the greedy answer; with the same
suffixes: `placer-greedy-by-end-from-room` is the default before 2026-12-05), best-fit,
Slurm's tree 22.05 and 24.05+. Prints every run and, per seed and policy, the
median and range. CP-SAT stops on its work limit (reproducible: the same replica gives the same run).

    .venv/bin/python bench/replicas.py [--stream superpod|alibaba] [--seeds 1,2,3] [--replicas 4]
                                       [--policies placer,placer-by-end,placer-from-room,best-fit,...]
                                       [--workers 2] [--hold 14400]
"""
from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scheduler import streams  # noqa: E402  (bench/ is sys.path[0] when run as a script)
from simulate import add_bf_depth  # noqa: E402

from placer.jobs import JobRequest  # noqa: E402
from placer.sim import SimConfig, replay_planner, simulate  # noqa: E402
from placer.timeline import DEFAULT_HOLD_S  # noqa: E402
from topology import Fabric  # noqa: E402

POLICIES = ("placer", "placer-greedy", "best-fit", "slurm-tree", "slurm-tree-24.05")
OFF = ("-by-end", "-from-room")  # placer's options a policy name may turn off
FIG = ("at_leaf_lower_bound", "excess_cross_leaf_pairs", "mean_wait_s", "utilisation_busy_period")


def stream(kind: str, seed: int, replica: int) -> tuple[Fabric, list[JobRequest]]:
    _, fabric, jobs = streams([kind], [seed])[0]
    if replica == 0:
        return fabric, jobs
    rng = random.Random(replica)
    moved = [dataclasses.replace(j, submit_time=(j.submit_time or 0.0) + rng.uniform(0, 60)) for j in jobs]
    return fabric, sorted(moved, key=lambda j: j.submit_time or 0.0)


def run(kind: str, seed: int, replica: int, policy: str, hold_s: float,
        bf_depth: int) -> tuple[int, int, str, dict[str, float]]:
    base, off = policy, set[str]()
    while base.startswith("placer") and base.endswith(OFF):
        option = next(o for o in OFF if base.endswith(o))
        base, off = base[: -len(option)], off | {option}
    if "+" in base:
        raise SystemExit(f"replicas.py: {policy!r}: placer's options are on by default now; "
                         f"name the ones to turn off ({', '.join(OFF)})")
    cfg = SimConfig(planner=replay_planner(small_jobs_by_end="-by-end" not in off),
                    hold_from_room="-from-room" not in off, hold_s=hold_s, bf_depth=bf_depth)
    _, s = simulate(*stream(kind, seed, replica), base, cfg)
    return seed, replica, policy, {k: float(s[k] or 0.0) for k in FIG}


def show(f: dict[str, float]) -> str:
    return (f"{f['at_leaf_lower_bound']:6.1%} {f['excess_cross_leaf_pairs']:6.2%} {f['mean_wait_s']:9,.0f} s "
            f"{f['utilisation_busy_period']:6.2%}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stream", choices=("superpod", "alibaba"), default="superpod")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--replicas", type=int, default=4, help="jittered copies besides the stream as generated")
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--hold", type=float, default=DEFAULT_HOLD_S, help="placer's hold limit (s)")
    add_bf_depth(ap)
    args = ap.parse_args()
    tasks = [(args.stream, s, r, p, args.hold, args.bf_depth) for s in map(int, args.seeds.split(","))
             for r in range(args.replicas + 1) for p in args.policies.split(",")]
    print("seed replica policy                  at-bound pairs   mean wait    util (busy period)")
    results = []
    with ProcessPoolExecutor(args.workers) as pool:
        for seed, rep, pol, f in pool.map(run, *zip(*tasks)):
            results.append((seed, rep, pol, f))
            print(f"{seed:4} {rep:7} {pol:24} {show(f)}", flush=True)
    print("\nmedian over the replicas (min-max of the mean wait)")
    for seed in sorted({r[0] for r in results}):
        for pol in args.policies.split(","):
            runs = [f for s, _, p, f in results if s == seed and p == pol]
            med = {k: statistics.median(f[k] for f in runs) for k in FIG}
            waits = [f["mean_wait_s"] for f in runs]
            print(f"{seed:4} {pol:24} {show(med)}   ({min(waits):,.0f}-{max(waits):,.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
