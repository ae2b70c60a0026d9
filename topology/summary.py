"""What `placer topology show` and `validate` report about a fabric, as plain data."""
from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from .fabric import Fabric, NodeState
from .links import degraded_summary
from .problems import shown


def level_label(level: int, depth: int) -> str:
    if level == 0:
        return "leaf"
    if level == depth - 1:
        return "core" if depth >= 3 else "spine"
    return "spine" if level == 1 else f"tier{level}"


def summarize(fabric: Fabric) -> dict[str, Any]:
    nodes_per_leaf = np.diff(fabric.leaf_node_ptr)
    levels = []
    for lv in range(fabric.depth):
        groups = np.nonzero(fabric.group_level == lv)[0]
        logical = sum(len(fabric.group_switches[g]) for g in groups)
        physical = sum(len(fabric.switches[s].members) for g in groups for s in fabric.group_switches[g])
        levels.append({"level": lv, "role": level_label(lv, fabric.depth), "groups": int(len(groups)),
                       "switches": int(logical), "physical_switches": int(physical)})
    gpus_by_model: Counter[str] = Counter()
    nodes_by_type: Counter[str] = Counter()
    for ti, t in enumerate(fabric.node_types):
        count = int((fabric.node_type == ti).sum())
        gpus_by_model[t.gpu_model] += count * t.gpus
        nodes_by_type[t.name] += count
    states = Counter(NodeState(int(s)).name.lower() for s in fabric.node_state.tolist())
    dom_sizes = np.bincount(fabric.node_domain[fabric.node_domain >= 0]) if fabric.domain_names else np.zeros(0)
    return {
        "name": fabric.name,
        "tiers": fabric.depth,
        "levels": levels,
        "switches": len(fabric.switches),
        "physical_switches": sum(len(s.members) for s in fabric.switches),
        "nodes": fabric.n_nodes,
        "node_states": {k: states.get(k, 0) for k in ("up", "drain", "down")},
        "nodes_by_type": dict(nodes_by_type),
        "gpus": fabric.total_gpus,
        "gpus_by_model": dict(gpus_by_model),
        "leaves": fabric.n_leaves,
        "nodes_per_leaf": {"min": int(nodes_per_leaf.min()), "median": float(np.median(nodes_per_leaf)),
                           "max": int(nodes_per_leaf.max())} if fabric.n_leaves else {},
        "rails": fabric.rails,
        "scalable_units": fabric.n_leaves if fabric.rails else 0,
        "nvlink_domains": len(fabric.domain_names),
        "nvlink_domain_nodes": sorted({int(x) for x in dom_sizes.tolist()}),
        "degraded_links": degraded_summary(fabric.degraded_links, set(fabric.node_names)),
        "located": {"nodes": sum(1 for n in fabric.locations if n in fabric.node_index),
                    "switches": sum(1 for n in fabric.locations if n not in fabric.node_index)},
    }


def render_summary(s: dict[str, Any]) -> str:
    out = [f"fabric {s['name']}: {s['nodes']:,} nodes, {s['gpus']:,} GPUs, {s['tiers']} tier(s)"]
    for lv in s["levels"]:
        extra = ""
        if lv["physical_switches"] != lv["groups"]:
            extra = f" ({lv['switches']:,} logical, {lv['physical_switches']:,} physical switches)"
        unit = "scalable units" if lv["level"] == 0 and s["rails"] else ("groups" if lv["groups"] != 1 else "group")
        out.append(f"  level {lv['level']} {lv['role']:<6} {lv['groups']:>6,} {unit}{extra}")
    npl = s["nodes_per_leaf"]
    if npl:
        out.append(f"  nodes per leaf: min {npl['min']}, median {npl['median']:g}, max {npl['max']}")
    out.append("  GPUs by model: " + ", ".join(f"{m} {n:,}" for m, n in sorted(s["gpus_by_model"].items())))
    out.append("  node types: " + ", ".join(f"{t} x{n:,}" for t, n in s["nodes_by_type"].items()))
    st = s["node_states"]
    out.append(f"  node states: up {st['up']:,}, drain {st['drain']:,}, down {st['down']:,}")
    if s["rails"]:
        out.append(f"  rails: {s['rails']} (each scalable unit = the nodes sharing one leaf per rail)")
    else:
        out.append("  rails: none described (one leaf per node)")
    if s["nvlink_domains"]:
        out.append(f"  NVLink domains: {s['nvlink_domains']:,} of {s['nvlink_domain_nodes']} nodes")
    dl = s["degraded_links"]
    if dl["links"]:
        out.append(f"  degraded links: {dl['links']:,} slower or narrower than their peers; behind them: "
                   f"{len(dl['nodes']):,} node(s) ({shown(list(dl['nodes']))}), {len(dl['switches']):,} switch(es) "
                   f"({shown([f'{k} x{v}' for k, v in dl['switches'].items()])})")
    else:
        out.append("  degraded links: none known")
    loc = s["located"]
    if loc["nodes"] or loc["switches"]:
        out.append(f"  physical locations (rack, U, serial): {loc['nodes']:,} of {s['nodes']:,} nodes, "
                   f"{loc['switches']:,} switches")
    return "\n".join(out)
