#!/usr/bin/env python3
"""Benchmark: one replay of one of bench/scheduler.py's streams, timed, with a hash of every record.

For a change meant to make replays faster and nothing else: run it in the old checkout and the new
(side by side, or one after the other on a quiet machine) and compare the time and the hash; the
hash covers every job's start, end and GPUs, so equal hashes mean the same schedule.

    .venv/bin/python bench/replay_check.py [--stream alibaba] [--seed 1] [--policy placer]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scheduler import streams  # noqa: E402  (bench/ is sys.path[0] when run as a script)
from simulate import SHARED, add_bf_depth  # noqa: E402

from placer.sim import SimConfig, simulate  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stream", default="alibaba", choices=["alibaba", "superpod", "philly"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--policy", default="placer")
    add_bf_depth(ap)
    args = ap.parse_args()
    if not SHARED.exists():
        print("../shared/data/traces is absent: this benchmark needs the project's shared traces")
        return 1
    name, fabric, jobs = streams([args.stream], [args.seed])[0]
    # the replay's default planner (replay_planner: CP-SAT by work units, small jobs by end)
    cfg = SimConfig(bf_depth=args.bf_depth)
    t = time.perf_counter()
    records, summary = simulate(fabric, jobs, args.policy, cfg)
    took = time.perf_counter() - t
    rows = [(r.start, r.end, [(int(n), [int(g) for g in ids]) for n, ids in r.alloc]) for r in records]
    digest = hashlib.sha1(json.dumps(rows).encode()).hexdigest()[:12]
    print(f"{name}, {args.policy}: {len(jobs):,} jobs in {took:.1f} s; records {digest}; "
          f"{summary['at_leaf_lower_bound']:.1%} at the bound, {summary['excess_cross_leaf_pairs']:.2%} excess "
          f"pairs, {summary['mean_wait_s']:,.0f} s mean wait")
    return 0


if __name__ == "__main__":
    sys.exit(main())
