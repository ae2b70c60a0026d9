"""`placer status`: what fits now, per tier and per partition, with a per-leaf occupancy strip."""
from __future__ import annotations

import time
from typing import Any

import click
import numpy as np

from placer.index import index_for
from placer.status import fabric_status
from topology import ClusterState
from topology.hostlists import compress

from .cluster_view import ClusterView, cluster_view
from .files import json_text

STRIP = "·▁▂▃▄▅▆▇█"  # a leaf's busy share, empty to full; x: no usable GPU


def _outside_reservations(view: ClusterView, now: float) -> tuple[ClusterState, list[dict[str, Any]]]:
    """The state a job outside Slurm's reservations sees now (the nodes of each active one not usable),
    and those reservations."""
    f = view.fabric
    active = [(r.name, [f.node_index[n] for n in r.nodes if n in f.node_index]) for r in view.reservations
              if r.start <= now < r.end]
    if not active:
        return view.state, []
    state = view.state.copy()
    for _, nodes in active:
        for i in nodes:
            state.set_usable(i, False)
    return state, [{"reservation": name, "nodes": compress([f.node_names[i] for i in nodes])} for name, nodes in active]


def status_data(view: ClusterView) -> dict[str, Any]:
    ix = index_for(view.fabric)
    state, reserved = _outside_reservations(view, time.time())
    whole = fabric_status(ix, state)
    parts: dict[str, Any] = {}
    for name, nodes in sorted((view.partitions or {}).items()):
        mask = np.zeros(view.fabric.n_nodes, dtype=bool)
        mask[[view.fabric.node_index[n] for n in nodes if n in view.fabric.node_index]] = True
        parts[name] = fabric_status(ix, state, mask).as_data()
    f = view.fabric
    down = [{"node": f.node_names[n], **({"location": f.locations[f.node_names[n]].as_data()}
                                         if f.node_names[n] in f.locations else {})}
            for n in np.nonzero(~view.state.usable)[0].tolist()]
    return {"fabric": f.name, "source": view.source, "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            **whole.as_data(), "partitions": parts, "down_or_drained": down, "reserved_now": reserved}


def _strip(leaves: list[dict[str, Any]]) -> str:
    out = []
    for lf in leaves:
        if lf["usable_gpus"] == 0:
            out.append("x")
            continue
        busy = 1 - lf["free_gpus"] / lf["usable_gpus"]
        out.append(STRIP[min(len(STRIP) - 1, int(np.ceil(busy * (len(STRIP) - 1))))])
    return "".join(out)


def strip_lines(view: ClusterView, leaves: list[dict[str, Any]], width: int = 100) -> list[str]:
    """One strip per level-1 group (a pod), several pods to a line when they are short."""
    f = view.fabric
    by_name = {lf["leaf"]: lf for lf in leaves}
    ix = index_for(f)
    groups: dict[str, list[dict[str, Any]]] = {}
    for leaf in ix.leaf_order.tolist():
        name = f.group_names[leaf]
        if name not in by_name:
            continue
        parent = int(ix.anc[1][leaf]) if ix.depth > 1 else -1
        groups.setdefault(f.group_names[parent] if parent >= 0 else "", []).append(by_name[name])
    cells = [(f"{g} " if g else "") + _strip(ls) for g, ls in groups.items()]
    lines, cur = [], ""
    for c in cells:
        if cur and len(cur) + 3 + len(c) > width:
            lines.append(cur)
            cur = ""
        cur = f"{cur}   {c}" if cur else c
    return lines + ([cur] if cur else [])


def render_status(view: ClusterView, data: dict[str, Any]) -> str:
    out = [f"{data['fabric']} ({data['source']}, {data['at']}): {data['free_gpus']:,} of {data['usable_gpus']:,} "
           f"usable GPUs free ({data['total_gpus']:,} in all); {data['stranded_gpus']:,} stranded on partly used "
           f"nodes; {data['whole_free_nodes']:,} whole free nodes; {len(data['down_or_drained']):,} nodes down or "
           "drained"]
    out.append(f"  {'within one':<10} {'blocks':>8} {'largest job now':>16}  {'most whole free nodes':>21}  where")
    for t in data["tiers"]:
        out.append(f"  {t['tier']:<10} {t['blocks']:>8,} {t['largest_gpus']:>11,} GPUs  "
                   f"{t['whole_free_nodes_max']:>21,}  {t['where'] or '-'}")
    if data["down_or_drained"]:  # what a technician walks to
        shown = [f"{d['node']}{view.fabric.where(d['node'])}" for d in data["down_or_drained"]]
        out.append(f"  down or drained: {', '.join(shown[:10])}" + (f" … and {len(shown) - 10} more"
                                                                     if len(shown) > 10 else ""))
    if data["reserved_now"]:  # not counted free above: jobs outside a reservation do not start on its nodes
        out.append("  in Slurm reservations now (not counted free): "
                   + ", ".join(f"{r['reservation']} {r['nodes']}" for r in data["reserved_now"]))
    out.append(f"  leaf occupancy ({STRIP[0]} empty … {STRIP[-1]} full, x down/drained/reserved), in rank order:")
    out.extend(f"    {line}" for line in strip_lines(view, data["leaves"]))
    for name, p in data["partitions"].items():
        t = {x["tier"]: x for x in p["tiers"]}
        leaf, top = t.get("leaf", p["tiers"][0]), p["tiers"][-1]
        out.append(f"  partition {name}: {p['free_gpus']:,} of {p['usable_gpus']:,} usable GPUs free, "
                   f"{p['stranded_gpus']:,} stranded; largest job now {leaf['largest_gpus']:,} GPUs within a leaf, "
                   f"{top['largest_gpus']:,} within the partition")
    return "\n".join(out)


@click.command("status")
@click.option("--inventory", help="Inventory YAML or preset:NAME [the config's inventory].")
@click.option("--state", "state_path", metavar="SNAPSHOT.json", help="Offline: a `placer slurm snapshot` (or plan) "
              "document instead of asking Slurm.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="The site configuration.")
@click.option("--backend", type=click.Choice(["auto", "slurm-cli", "pyslurm"]), help="How to talk to Slurm.")
@click.option("--slurm-conf", envvar="SLURM_CONF", type=click.Path(dir_okay=False), help="slurm.conf for Slurm's "
              "commands.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--plot", metavar="PNG", help="Also write a heat map of the leaves' occupancy here.")
@click.option("--watch", "watch_s", type=click.FloatRange(min=0.5), metavar="SECONDS",
              help="Refresh every SECONDS until interrupted.")
def status_cmd(inventory: str | None, state_path: str | None, config_path: str | None, backend: str | None,
               slurm_conf: str | None, fmt: str, plot: str | None, watch_s: float | None) -> None:
    """What fits now: per tier (node, leaf, pod, ..., all) the free GPUs and the largest job placeable
    within one block; stranded GPUs; each partition; a per-leaf occupancy strip.

    \b
    Examples:
      placer status                                   # live, the config's inventory and backend
      placer status --inventory inv.yaml --state now.json --format json
      placer status --plot leaves.png --watch 10
    """
    while True:
        view = cluster_view(inventory, state_path, config_path, backend, slurm_conf)
        data = status_data(view)
        if watch_s:
            click.clear()
        click.echo(json_text(data, indent=1) if fmt == "json" else render_status(view, data))
        if plot:
            from .plots import write_leaf_heatmap

            click.echo(f"wrote {write_leaf_heatmap(view.fabric, data['leaves'], plot)}", err=True)
        if not watch_s:
            return
        try:
            time.sleep(watch_s)
        except KeyboardInterrupt:  # Ctrl-C is how a watch ends: not an error
            return
