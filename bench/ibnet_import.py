#!/usr/bin/env python3
"""Benchmark: importing an ibnetdiscover dump of a 1,024-node, three-tier, 8-rail fabric.

The dump is written by `placer topology export --format ibnetdiscover` from a generated fabric (2 pods
x 16 SUs x 32 nodes; every leaf wired to every spine of its pod, every spine to every core), then
imported in fresh processes. Target (issue 6): under 30 s. Also checks the import found the same tree.

    .venv/bin/python bench/ibnet_import.py [--runs 3] [--pods 2]
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
from topology.ibnetdiscover import ImportOptions, import_ibnetdiscover
t = time.perf_counter()
f, w = import_ibnetdiscover(open(sys.argv[1]).read(), ImportOptions(), "bench")
print(json.dumps({{"s": time.perf_counter() - t, "nodes": f.n_nodes, "leaves": f.n_leaves, "depth": f.depth,
                  "rails": f.rails, "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pods", type=int, default=2)
    args = ap.parse_args()
    from topology.exporters import export
    from topology.generate import design_for, generate

    fabric = generate(design_for("campus-16k", pods=args.pods))
    text = export(fabric, "ibnetdiscover")
    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "fabric.out"
        dump.write_text(text)
        switches = sum(len(s.members) for s in fabric.switches)
        print(f"dump of {fabric.n_nodes:,} nodes, {fabric.rails} rails, {switches:,} switches, "
              f"{text.count(chr(10)):,} lines ({dump.stat().st_size / 1e6:.1f} MB); {args.runs} fresh processes")
        rows = []
        for _ in range(args.runs):
            out = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT)), str(dump)], capture_output=True,
                                 text=True, check=True)
            rows.append(json.loads(out.stdout))
    med = statistics.median(r["s"] for r in rows)
    r = rows[0]
    same = (r["nodes"], r["leaves"], r["depth"], r["rails"]) == (fabric.n_nodes, fabric.n_leaves, fabric.depth,
                                                                  fabric.rails)
    ok = med < 30 and same
    print(f"import: median {med:.2f} s (max {max(x['s'] for x in rows):.2f} s), peak RSS {r['rss_mib']:.0f} MiB; "
          f"found {r['nodes']:,} nodes, {r['leaves']} scalable units, {r['depth']} tiers, {r['rails']} rails "
          f"[{'same as generated' if same else 'DIFFERS from generated'}] [{'meets' if med < 30 else 'MISSES'} < 30 s]")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
