#!/usr/bin/env python3
"""Benchmark: the 1,048,576-GPU fabric (colossus-1m: 131,072 nodes) next to the 221,184-GPU one (issue 19).

For each preset, in a fresh process of its own (so peak memory is that preset's):
  - import: topology.conf + slurm.conf node lines of that size read into a Fabric (median of --runs fresh
    processes; wall time of the import and peak RSS of the whole process; target <= 10 s, <= 2 GB);
  - plan decisions: single jobs of 8 to 16,384 GPUs on fragmented states 80% busy (bench/states.py),
    p50/p99 (target p99 <= 100 ms);
  - 1,000 pending jobs planned at once on such a state (target <= 20 s);
  - a 100,000-job Alibaba-shaped replay (load 0.9, placer's scheduler at its defaults; target <= 20 min).
The 221,184-GPU figures must not get worse than docs/benchmarks.md's.

    .venv/bin/python bench/scale.py [--presets colossus-200k,colossus-1m] [--replay-jobs 100000]
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from simulate import add_bf_depth  # noqa: E402  (bench/ is on sys.path)

TARGETS = {"import_s": 10.0, "import_mib": 2048, "p99_ms": 100.0, "queue_s": 20.0, "replay_s": 1200.0}


def one(preset: str, replay_jobs: int, states_n: int, bf_depth: int) -> dict[str, float]:
    """Decisions, the 1,000-job queue and the replay on one preset, in this process."""
    from placement import DECISION_SIZES
    from simulate import alibaba_shape
    from states import fragmented_state, mixed_job_gpus

    from placer import JobRequest, PlannerConfig, place_one, plan
    from placer.index import index_for
    from placer.sim import SimConfig, simulate
    from placer.tracegen import generate_trace
    from topology.generate import design_for, generate

    fabric = generate(design_for(preset))
    ix = index_for(fabric)
    states = [fragmented_state(fabric, 0.80, seed) for seed in range(states_n)]
    cfg = PlannerConfig()
    times = []
    for s in states:
        for g in DECISION_SIZES:
            for _ in range(3):
                t = time.perf_counter()
                place_one(ix, s, JobRequest("x", g), cfg)
                times.append(time.perf_counter() - t)
    rng = np.random.default_rng(42)
    jobs = []
    for i in range(1000):
        g = mixed_job_gpus(rng)
        jobs.append(JobRequest(f"q{i}", g, priority=int(rng.integers(0, 3))))
    t = time.perf_counter()
    res = plan(fabric, states[0], jobs, cfg)
    queue_s = time.perf_counter() - t
    out = {"p50_ms": float(np.percentile(times, 50)) * 1e3, "p99_ms": float(np.percentile(times, 99)) * 1e3,
           "queue_s": queue_s, "queue_placed": res.summary()["placed"]}
    if replay_jobs:
        trace = generate_trace(alibaba_shape(), fabric.total_gpus, fabric.n_nodes, 8, replay_jobs, 0.9, seed=0)
        t = time.perf_counter()
        _, summ = simulate(fabric, trace, "placer", SimConfig(bf_depth=bf_depth))
        out["replay_s"] = time.perf_counter() - t
        out["replay_at_bound"] = float(summ["at_leaf_lower_bound"])
    out["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def import_figures(preset: str, runs: int) -> dict[str, float]:
    """topology.conf + slurm.conf of the preset imported in `runs` fresh processes (bench/fabric_load.py's child)."""
    from fabric_load import CHILD

    from topology.exporters import export
    from topology.generate import design_for, generate

    fabric = generate(design_for(preset))
    with tempfile.TemporaryDirectory() as tmp:
        topo, nodes = Path(tmp, "topology.conf"), Path(tmp, "nodes.conf")
        topo.write_text(export(fabric, "slurm-tree"))
        nodes.write_text(export(fabric, "slurm-nodes"))
        rows = [json.loads(subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT)), "conf", str(topo),
                                           str(nodes)], capture_output=True, text=True, check=True).stdout)
                for _ in range(runs)]
    return {"import_s": statistics.median(r["load_s"] for r in rows),
            "import_mib": statistics.median(r["maxrss_mib"] for r in rows), "nodes": fabric.n_nodes,
            "gpus": fabric.total_gpus}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="colossus-200k,colossus-1m")
    ap.add_argument("--runs", type=int, default=3, help="fresh processes per import")
    ap.add_argument("--states", type=int, default=3)
    ap.add_argument("--replay-jobs", type=int, default=100_000)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    add_bf_depth(ap)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.replay_jobs, args.states, args.bf_depth)))
        return 0
    ok = True
    for preset in args.presets.split(","):
        t0 = time.perf_counter()
        fig = import_figures(preset, args.runs)
        child = subprocess.run([sys.executable, __file__, "--one", preset, "--replay-jobs", str(args.replay_jobs),
                                "--bf-depth", str(args.bf_depth),
                                "--states", str(args.states)], capture_output=True, text=True, check=True)
        fig.update(json.loads(child.stdout.strip().splitlines()[-1]))
        checks = {k: fig[k] <= v for k, v in TARGETS.items() if k in fig}
        ok &= all(checks.values())
        mark = {k: "met" if v else "NOT MET" for k, v in checks.items()}
        print(f"\n{preset}: {fig['nodes']:,} nodes, {fig['gpus']:,} GPUs ({time.perf_counter() - t0:.0f} s)")
        print(f"  import topology.conf + slurm.conf: {fig['import_s']:.2f} s, peak {fig['import_mib']:.0f} MiB "
              f"[{mark['import_s']} <= 10 s, {mark['import_mib']} <= 2 GB]")
        print(f"  plan decision (80% busy): p50 {fig['p50_ms']:.1f} ms, p99 {fig['p99_ms']:.1f} ms "
              f"[{mark['p99_ms']} <= 100 ms]")
        print(f"  1,000 pending jobs: {fig['queue_s']:.2f} s, {fig['queue_placed']} placed [{mark['queue_s']} <= 20 s]")
        if "replay_s" in fig:
            print(f"  {args.replay_jobs:,}-job replay, placer's scheduler: {fig['replay_s']:.0f} s, at the bound "
                  f"{fig['replay_at_bound']:.1%} [{mark['replay_s']} <= 20 min]")
        print(f"  peak memory of the decision/replay process: {fig['rss_mib']:.0f} MiB")
    print(f"\n{'every target met' if ok else 'SOME TARGETS NOT MET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
