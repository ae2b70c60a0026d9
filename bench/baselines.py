#!/usr/bin/env python3
"""Benchmark: placer against the strongest cheap baseline (best-fit) and Slurm's tree, on issue 18's setup.

An Alibaba-shaped stream (placer trace generate's shape from ../shared/data/traces/alibaba-spot-2026) on
the 16,384-GPU preset (campus-16k), multi-node sizes doubled, then arrivals scaled to an offered load;
FCFS + EASY for every policy. Prints the replay table per seed.

    .venv/bin/python bench/baselines.py [--jobs 30000] [--seeds 1,2,3] [--load 1.0]
                                        [--policies best-fit,slurm-tree,slurm-tree-24.05,placer]
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulate import SHARED, add_bf_depth, alibaba_shape  # noqa: E402  (bench/ is sys.path[0] when run as a script)

from cli.simulate_cmd import render_table  # noqa: E402
from placer.sim import SimConfig, simulate  # noqa: E402
from placer.tracegen import generate_trace, scale_to_load  # noqa: E402
from topology.generate import design_for, generate  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=30000)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--load", type=float, default=1.0)
    ap.add_argument("--policies", default="best-fit,slurm-tree,slurm-tree-24.05,placer")
    add_bf_depth(ap)
    args = ap.parse_args()
    if not SHARED.exists():
        print("../shared/data/traces is absent: this benchmark needs the project's shared Alibaba tables")
        return 1
    fabric = generate(design_for("campus-16k"))
    for seed in [int(x) for x in args.seeds.split(",")]:
        jobs = generate_trace(alibaba_shape(), fabric.total_gpus, fabric.n_nodes, 8, args.jobs, 1.0, seed=seed)
        jobs = [dataclasses.replace(j, gpus=j.gpus * 2) if j.gpus > 8 else j for j in jobs]  # multi-node doubled
        jobs = scale_to_load(jobs, fabric.total_gpus, args.load)
        summaries = {}
        for policy in args.policies.split(","):
            t = time.perf_counter()
            _, summaries[policy] = simulate(fabric, jobs, policy, SimConfig(bf_depth=args.bf_depth))
            print(f"seed {seed}: {policy} replayed in {time.perf_counter() - t:.0f} s", flush=True)
        print(f"\nAlibaba-shaped, seed {seed}, {len(jobs):,} jobs, campus-16k, load {args.load:g}, multi-node doubled")
        print(render_table(summaries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
