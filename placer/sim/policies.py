"""Placement policies for trace replay: where a job goes, given that the scheduler starts it now.

`placer` (this project's scheduler as `placer apply` runs it: the greedy answer, improved by CP-SAT within
a work limit; the default since 2026-12-05, when CP-SAT missed fewer of issue 18's checks than the greedy),
`placer-greedy` (the same scheduler taking the greedy answer, to show what CP-SAT adds), `slurm-tree` (Slurm
22.05 topology/tree, faithfully), `slurm-tree-24.05`, `best-fit` (the strongest cheap greedy,
placer/sim/bestfit.py) and `first-fit` (lowest-named free nodes). A policy is a function
(index, state, job, eligibility) -> allocation or None; add one here and to `make_policy`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from topology import ClusterState, RequestError

from ..eligibility import Eligibility
from ..engine import place_one
from ..index import FabricIndex
from ..islands import pick_gpus
from ..jobs import JobRequest
from ..slurm_tree import slurm_tree_nodes
from ..types import PlannerConfig
from .bestfit import policy_best_fit
from .records import Alloc

Policy = Callable[[FabricIndex, ClusterState, JobRequest, Eligibility], "Alloc | None"]
POLICIES = ("placer", "placer-greedy", "slurm-tree", "slurm-tree-24.05", "best-fit", "first-fit")
PLACER_POLICIES = ("placer", "placer-greedy")  # the ones placer's scheduler (its hold) runs


def _whole(ix: FabricIndex, nodes: list[int]) -> Alloc:
    return [(n, list(range(int(ix.fabric.node_gpus[n])))) for n in nodes]


def policy_placer(cfg: PlannerConfig) -> Policy:
    def choose(ix: FabricIndex, state: ClusterState, job: JobRequest, el: Eligibility) -> Alloc | None:
        p = place_one(ix, state, job, cfg, el=el)
        if p.status != "placed":
            return None
        return [(ix.fabric.node_index[n], ids) for n, ids in p.gpu_ids.items()]

    return choose


def policy_slurm_tree(version: str) -> Policy:
    def choose(ix: FabricIndex, state: ClusterState, job: JobRequest, el: Eligibility) -> Alloc | None:
        nodes = slurm_tree_nodes(ix, el.now, el.nodes_needed, version)  # type: ignore[arg-type]
        if nodes is None:
            return None
        if el.multi_node:
            return _whole(ix, nodes)
        return [(nodes[0], pick_gpus(ix, state, nodes[0], job.gpus, tightest=False))]

    return choose


def policy_first_fit(ix: FabricIndex, state: ClusterState, job: JobRequest, el: Eligibility) -> Alloc | None:
    order = _name_order(ix)
    ok = order[el.now[order]]
    if ok.size < el.nodes_needed:
        return None
    if el.multi_node and ix.n_trees > 1:  # blind to the tree, but not across disjoint trees (no path there)
        tree = ix.leaf_tree[ix.fabric.node_leaf[ok]]
        fits = [t for t in dict.fromkeys(tree.tolist()) if (tree == t).sum() >= el.nodes_needed]
        if not fits:
            return None
        ok = ok[tree == fits[0]]
    if el.multi_node:
        return _whole(ix, [int(n) for n in ok[: el.nodes_needed]])
    n = int(ok[0])
    return [(n, pick_gpus(ix, state, n, job.gpus, tightest=False))]


def _name_order(ix: FabricIndex) -> np.ndarray:
    cached = getattr(ix, "_name_order", None)
    if cached is None:
        cached = np.asarray(sorted(range(ix.fabric.n_nodes), key=lambda i: ix.fabric.node_names[i]), dtype=np.int64)
        object.__setattr__(ix, "_name_order", cached)
    return cached


def make_policy(name: str, planner: PlannerConfig) -> Policy:
    if name == "placer":  # the product's scheduler, as `placer apply` runs it by default
        return policy_placer(replace(planner, solver="cpsat"))
    if name == "placer-greedy":  # the same, greedy: what CP-SAT adds (issue 18, point 6)
        return policy_placer(replace(planner, solver="greedy"))
    if name == "slurm-tree":
        return policy_slurm_tree("22.05")
    if name == "slurm-tree-24.05":
        return policy_slurm_tree("24.05")
    if name == "first-fit":
        return policy_first_fit
    if name == "best-fit":
        return policy_best_fit
    raise RequestError(f"unknown policy {name!r}; one of {', '.join(POLICIES)}")
