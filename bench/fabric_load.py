#!/usr/bin/env python3
"""Benchmark: load time and peak memory of the fabric model at Colossus scale.

Writes the chosen preset (default colossus-200k: 27,648 nodes, 221,184 GPUs) as an inventory YAML
and as Slurm topology.conf + slurm.conf node lines, then loads each in fresh processes and prints
the median wall time and the median peak RSS of the whole process (interpreter and imports
included). Targets (issue 2): <= 5 s and <= 1 GB.

    .venv/bin/python bench/fabric_load.py [--preset colossus-200k] [--runs 5]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {root!r})
t0 = time.perf_counter()
from topology import load_inventory
from topology.slurm_conf import import_slurm
from topology.state import ClusterState
t1 = time.perf_counter()
kind, a, b = sys.argv[1], sys.argv[2], sys.argv[3]
if kind == "yaml":
    fabric, _ = load_inventory(a)
else:
    fabric, _ = import_slurm(open(a).read(), open(b).read())
t2 = time.perf_counter()
state = ClusterState(fabric)
t3 = time.perf_counter()
print(json.dumps({{"import_s": t1 - t0, "load_s": t2 - t1, "state_s": t3 - t2, "nodes": fabric.n_nodes,
                  "gpus": fabric.total_gpus, "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="colossus-200k")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()

    from topology import dump_inventory
    from topology.exporters import export
    from topology.generate import design_for, generate

    fabric = generate(design_for(args.preset))
    with tempfile.TemporaryDirectory() as tmp:
        inv, topo, nodes = Path(tmp, "inv.yaml"), Path(tmp, "topology.conf"), Path(tmp, "nodes.conf")
        inv.write_text(dump_inventory(fabric))
        topo.write_text(export(fabric, "slurm-tree"))
        nodes.write_text(export(fabric, "slurm-nodes"))
        print(f"preset {args.preset}: {fabric.n_nodes:,} nodes, {fabric.total_gpus:,} GPUs, "
              f"{len(fabric.switches):,} switches; inventory {inv.stat().st_size / 1e6:.1f} MB, "
              f"topology.conf {topo.stat().st_size / 1e6:.2f} MB; {args.runs} fresh processes each")
        code = CHILD.format(root=str(ROOT))
        ok = True
        for kind, a, b in (("yaml", inv, "-"), ("topology.conf", topo, nodes)):
            rows = []
            for _ in range(args.runs):
                out = subprocess.run([sys.executable, "-c", code, kind, str(a), str(b)], capture_output=True,
                                     text=True, check=True)
                rows.append(json.loads(out.stdout))
            load = statistics.median(r["load_s"] for r in rows)
            state = statistics.median(r["state_s"] for r in rows)
            rss = statistics.median(r["maxrss_mib"] for r in rows)
            worst = max(r["load_s"] for r in rows)
            good = load <= 5.0 and rss <= 1024
            ok &= good
            print(f"  from {kind:<14} load median {load:6.2f} s (max {worst:.2f} s), "
                  f"ClusterState {state * 1e3:5.1f} ms, "
                  f"peak RSS median {rss:6.0f} MiB  [{'meets' if good else 'MISSES'} <= 5 s, <= 1 GiB]")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
