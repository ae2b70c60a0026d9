#!/usr/bin/env python3
"""Benchmark: placement decisions at Colossus scale, and placer against Slurm's topology/tree.

On the 221,184-GPU preset with about 80% of GPUs busy in a fragmented pattern (bench/states.py:
filled with a job mix, then random jobs end), prints:
  - single-job decision time p50/p99 for jobs of 8 to 16,384 GPUs (target p99 <= 50 ms);
  - a 1,000-job queue planned at once (target <= 10 s);
  - peak memory of the process (target <= 2 GB);
  - the share of multi-node jobs at the leaf lower bound, placer vs a faithful re-implementation of
    Slurm 22.05 topology/tree (and 24.05) on the same states (target: ours >= theirs on every state,
    >= 99% overall).

    .venv/bin/python bench/placement.py [--states 5] [--preset colossus-200k]
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from states import fragmented_state, mixed_job_gpus  # noqa: E402

from placer import JobRequest, PlannerConfig, place_one, plan  # noqa: E402
from placer.eligibility import eligibility  # noqa: E402
from placer.index import index_for  # noqa: E402
from placer.slurm_tree import Version, slurm_tree_choice  # noqa: E402
from topology.generate import design_for, generate  # noqa: E402

VERSIONS: tuple[Version, ...] = ("22.05", "24.05")
DECISION_SIZES = [8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]
COMPARE_SIZES = [16, 24, 40, 64, 96, 128, 200, 256, 320, 512, 640, 1024, 1536, 2048, 3072, 4096, 8192, 16384]


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="colossus-200k")
    ap.add_argument("--states", type=int, default=5)
    ap.add_argument("--busy", type=float, default=0.80)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--queue", type=int, default=1000)
    args = ap.parse_args()

    t0 = time.perf_counter()
    fabric = generate(design_for(args.preset))
    ix = index_for(fabric)
    states = [fragmented_state(fabric, args.busy, seed) for seed in range(args.states)]
    busy = [1 - s.free_gpus[s.usable].sum() / fabric.total_gpus for s in states]
    print(f"{args.preset}: {fabric.n_nodes:,} nodes, {fabric.total_gpus:,} GPUs, {fabric.n_leaves} leaves; "
          f"{args.states} fragmented states at {np.mean(busy):.1%} busy "
          f"({np.mean([int(s.whole_free().sum()) for s in states]):,.0f} whole free nodes on average); "
          f"set-up {time.perf_counter() - t0:.1f} s")
    cfg = PlannerConfig()
    ok = True

    # -- single-job decision time
    times: dict[int, list[float]] = {g: [] for g in DECISION_SIZES}
    solvers: dict[str, int] = {}
    for s in states:
        for g in DECISION_SIZES:
            for _ in range(args.repeats):
                t = time.perf_counter()
                p = place_one(ix, s, JobRequest("x", g), cfg)
                times[g].append(time.perf_counter() - t)
            key = p.solver.split(" (")[0] if p.solver else p.status
            solvers[key] = solvers.get(key, 0) + 1
    every = [x for v in times.values() for x in v]
    print("\nsingle-job decision time (ms)          p50     p99     max")
    for g in DECISION_SIZES:
        print(f"  {g:>6,} GPUs                      {pct(times[g], 50) * 1e3:7.1f} {pct(times[g], 99) * 1e3:7.1f} "
              f"{max(times[g]) * 1e3:7.1f}")
    p99 = pct(every, 99)
    good = p99 <= 0.050
    ok &= good
    print(f"  all sizes                        {pct(every, 50) * 1e3:7.1f} {p99 * 1e3:7.1f} {max(every) * 1e3:7.1f}"
          f"   [{'meets' if good else 'MISSES'} p99 <= 50 ms]")
    print("  how decided: " + ", ".join(f"{k} {v}" for k, v in sorted(solvers.items())))

    # -- leaf lower bound: placer vs Slurm's tree on the same states
    print("\nmulti-node jobs at the leaf lower bound   placer   slurm 22.05   slurm 24.05"
          "   (pods over bound: ours/22.05)")
    tot = {"ours": 0, "22.05": 0, "24.05": 0, "n": 0}
    for si, s in enumerate(states):
        cnt = {"ours": 0, "22.05": 0, "24.05": 0, "n": 0}
        pods_over = {"ours": 0, "22.05": 0}
        for g in COMPARE_SIZES:
            job = JobRequest("x", g)
            p = place_one(ix, s, job, cfg)
            if p.status != "placed" or len(p.nodes) < 2:
                continue
            el = eligibility(ix, s, job)
            cnt["n"] += 1
            cnt["ours"] += p.leaves == p.leaf_lower_bound
            pods_over["ours"] += p.pods - (p.pod_lower_bound or 1)
            for v in VERSIONS:
                ch = slurm_tree_choice(ix, s, el, v)
                assert ch is not None
                cnt[v] += ch.leaves == p.leaf_lower_bound
                if v == "22.05":
                    pods_over["22.05"] += ch.groups_by_level[1] - (p.pod_lower_bound or 1)
        for k in tot:
            tot[k] += cnt[k]
        n = max(cnt["n"], 1)
        state_ok = cnt["ours"] >= cnt["22.05"]
        ok &= state_ok
        print(f"  state {si} ({cnt['n']} jobs)                  {cnt['ours'] / n:6.1%}   {cnt['22.05'] / n:11.1%}   "
              f"{cnt['24.05'] / n:11.1%}   {pods_over['ours']}/{pods_over['22.05']}"
              f"{'' if state_ok else '   <- ours below Slurm'}")
    n = max(tot["n"], 1)
    share = tot["ours"] / n
    good = share >= 0.99
    ok &= good
    print(f"  overall ({tot['n']} jobs)                  {share:6.1%}   {tot['22.05'] / n:11.1%}   "
          f"{tot['24.05'] / n:11.1%}"
          f"   [{'meets' if good else 'MISSES'} >= 99%, ours >= Slurm on every state]")

    # -- a 1,000-job queue at once
    rng = np.random.default_rng(42)
    jobs = []
    for i in range(args.queue):
        g = mixed_job_gpus(rng)
        jobs.append(JobRequest(f"q{i}", g, priority=int(rng.integers(0, 3))))
    t = time.perf_counter()
    result = plan(fabric, states[0], jobs, cfg)
    el_s = time.perf_counter() - t
    summ = result.summary()
    good = el_s <= 10.0
    ok &= good
    print(f"\n{args.queue:,}-job queue: {el_s:.2f} s   [{'meets' if good else 'MISSES'} <= 10 s]; "
          f"placed {summ['placed']}, pending {summ['pending']}, "
          f"multi-node at leaf bound {summ['at_leaf_lower_bound']}/{summ['multi_node_jobs']}, "
          f"greedy fallbacks {summ['greedy_fallbacks']}")

    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    good = rss_mib <= 2048
    ok &= good
    print(f"peak memory: {rss_mib:,.0f} MiB   [{'meets' if good else 'MISSES'} <= 2 GB]")
    print(f"\n{'all targets met' if ok else 'SOME TARGETS MISSED'}; total {time.perf_counter() - t0:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
