#!/usr/bin/env python3
"""Benchmark: per-step traffic of placer's rank order against Slurm's default (by node name).

A 4,096-GPU job (tp=8, pp=8, dp=64) placed by placer on fragmented states of the 16,384-GPU preset
(bench/states.py); traffic per training step counted with placer/ranks.py's model (equal weights).
Target (issue 7): cross-leaf traffic of placer's order at most half of name order's. The preset's
node names follow the tree (gpu0001.. fill SU by SU), which makes name order as good as it gets; a
second column renames the nodes in a shuffled order, as clusters named by rack position often are.

    .venv/bin/python bench/ranks.py [--states 5]
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from states import fragmented_state  # noqa: E402

from placer import JobRequest, PlannerConfig, place_one  # noqa: E402
from placer.index import index_for  # noqa: E402
from placer.ranks import Parallelism, name_order_layout, placer_layout, traffic  # noqa: E402
from topology.generate import design_for, generate  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--states", type=int, default=5)
    args = ap.parse_args()
    fabric = generate(design_for("campus-16k"))
    ix = index_for(fabric)
    par = Parallelism(8, 8, 64)
    ratios, shuffled_ratios = [], []
    print("state  leaves  placer cross-leaf  name order  ratio   shuffled names  ratio   layout ms")
    for seed in range(args.states):
        state = fragmented_state(fabric, 0.6, seed)
        p = place_one(ix, state, JobRequest("llm", 4096, gpus_per_node=8, tp=8, pp=8, dp=64), PlannerConfig())
        t = time.perf_counter()
        ours = traffic(fabric, placer_layout(fabric, p.gpu_ids, par), par)
        ms = (time.perf_counter() - t) * 1e3
        name = traffic(fabric, name_order_layout(fabric, p.gpu_ids, par), par)
        # the same nodes under names in a shuffled order: Slurm's name order then ignores the tree
        rng = random.Random(seed)
        nodes = list(p.gpu_ids)
        alias = dict(zip(nodes, rng.sample(nodes, len(nodes))))
        renamed = {alias[n]: p.gpu_ids[n] for n in nodes}
        order = sorted(renamed)  # name order of the aliases, mapped back to the real nodes
        inverse = {v: k for k, v in alias.items()}
        shuffled_ids = {inverse[a]: renamed[a] for a in order}
        shuffled = traffic(fabric, _in_given_order(fabric, shuffled_ids, par), par)
        r, rs = ours["cross_leaf"] / name["cross_leaf"], ours["cross_leaf"] / shuffled["cross_leaf"]
        ratios.append(r)
        shuffled_ratios.append(rs)
        print(f"{seed:>5}  {p.leaves:>6}  {ours['cross_leaf']:>17,.0f}  {name['cross_leaf']:>10,.0f}  {r:5.2f}   "
              f"{shuffled['cross_leaf']:>14,.0f}  {rs:5.2f}   {ms:9.0f}")
    worst = max(ratios)
    ok = worst <= 0.5
    print(f"median ratio {statistics.median(ratios):.2f} (worst {worst:.2f}) against tree-aligned names, "
          f"{statistics.median(shuffled_ratios):.2f} against shuffled names "
          f"[{'meets' if ok else 'MISSES'} <= 0.5]")
    return 0 if ok else 1


def _in_given_order(fabric, gpu_ids, par):
    """Block distribution over the nodes in the dict's order (a name order under other names)."""
    slots = [(fabric.node_index[n], g) for n in gpu_ids for g in sorted(gpu_ids[n])]
    return slots


if __name__ == "__main__":
    sys.exit(main())
