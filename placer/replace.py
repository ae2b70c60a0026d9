"""Replacing failed nodes of a running (or requeued) job with the nodes that add the least traffic.

For each failed node: a whole free node of the same size that meets the job's constraints (features,
GPU model, the matching-OR alternative its other nodes meet, partition, --exclude: `allowed_nodes`),
not one another pending job will start on unless none is left, nearest in the tree (same leaf, then
same level-1 group, then anywhere), hot spares first at each distance. The replacement takes over
the failed node's ranks, so the rank order and hostfile change only there.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from topology import ClusterState, Fabric, RequestError

from .eligibility import allowed_mask
from .engine import alternatives
from .index import FabricIndex, index_for, spare_mask
from .jobs import JobRequest


@dataclass
class Replacement:
    failed: str
    node: str | None
    why: str


@dataclass
class ReplacePlan:
    replacements: list[Replacement]
    nodes: list[str]  # the job's new node list, in the old order (a replacement takes its failed node's place)
    missing: list[str] = field(default_factory=list)


def allowed_nodes(ix: FabricIndex, state: ClusterState, job: JobRequest, kept: list[str]) -> np.ndarray | None:
    """The nodes in service a replacement may be for `job` (features, GPU model, partition, --exclude):
    for a matching-OR constraint (`-C "[a|b]"`), those of each alternative that all its other nodes
    (`kept`) meet. None when they meet none by the inventory: the job's constraints cannot be checked."""
    f = ix.fabric
    at = [f.node_index[n] for n in kept]
    out = np.zeros(f.n_nodes, dtype=bool)
    met = False
    for a in alternatives(job):
        ok = allowed_mask(ix, job, a)  # whatever the size: the failed node's own is asked for below
        if ok[at].all():
            out |= ok & state.usable
            met = True
    return out if met else None


def choose_replacements(fabric: Fabric, state: ClusterState, job_nodes: list[str], failed: list[str],
                        spares_per_su: int = 0, allowed: np.ndarray | None = None,
                        last_resort: np.ndarray | None = None) -> ReplacePlan:
    """`allowed`: the nodes that meet the job's constraints (`allowed_nodes`); None: not known (a plan
    does not carry them), any node of the size. `last_resort`: nodes other pending jobs will start on
    (their node lists: placer's pins, -w), taken only when no other node is left: the job there would
    wait for it."""
    unknown = [n for n in failed if n not in job_nodes]
    if unknown:
        raise RequestError(f"not nodes of this job: {', '.join(unknown)}")
    ix = index_for(fabric)
    spares = spare_mask(ix, spares_per_su)
    free = state.whole_free().copy()
    for n in job_nodes:
        free[fabric.node_index[n]] = False
    out: list[Replacement] = []
    new_nodes = list(job_nodes)
    missing = []
    for name in failed:
        i = fabric.node_index[name]
        size = int(fabric.node_gpus[i])
        leaf = int(fabric.node_leaf[i])
        pod = int(ix.anc[1][leaf]) if ix.depth > 1 else -1
        fits = free & (fabric.node_gpus == size)
        cand = np.nonzero(fits if allowed is None else fits & allowed)[0]
        if not cand.size:
            met = "" if allowed is None else " that meets the job's constraints"
            out.append(Replacement(name, None, f"no whole free {size}-GPU node left{met}"))
            missing.append(name)
            continue
        c_leaf = fabric.node_leaf[cand]
        dist = np.where(c_leaf == leaf, 0, np.where((ix.anc[1][c_leaf] == pod) if ix.depth > 1 else False, 1, 2))
        spoken = last_resort[cand] if last_resort is not None else np.zeros(cand.size, dtype=bool)
        order = np.lexsort((cand, ~spares[cand], dist, spoken))
        best = int(cand[order[0]])
        free[best] = False
        where = ["in the same leaf", "in the same level-1 group", "elsewhere"][int(dist[order[0]])]
        taken = ", named by a pending job's node list (it waits for it)" if spoken[order[0]] else ""
        out.append(Replacement(name, fabric.node_names[best],
                               f"{'hot spare' if spares[best] else 'free node'} {where}{taken}"))
        new_nodes[new_nodes.index(name)] = fabric.node_names[best]
    return ReplacePlan(out, new_nodes, missing)
