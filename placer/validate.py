"""The one validator every placement passes, whatever produced it.

Deliberately independent of the planner's code: it replays the placements in priority order on its
own plain Python picture of the cluster and recomputes everything from the fabric and the README's
formulas (GPU counts, no GPU given twice, no down node, whole nodes for multi-node jobs, features,
exclusions, max_switches, leaves spanned, the leaf lower bound, the cost). Pending and unplaceable
claims are checked too: a job said not to fit must really not fit.
"""
from __future__ import annotations

from collections.abc import Iterable

from topology import ClusterState, Fabric

from .cost import cost_weights, placement_cost
from .index import index_for
from .islands import island_masks
from .jobs import JobRequest
from .types import Placement


def _ancestors(f: Fabric, leaf: int) -> list[int]:
    out, g = [], leaf
    while g >= 0:
        out.append(g)
        g = int(f.group_parent[g])
    return out


def _group_nodes(f: Fabric) -> dict[int, set[int]]:
    members: dict[int, set[int]] = {g: set() for g in range(f.n_groups)}
    for n in range(f.n_nodes):
        for g in _ancestors(f, int(f.node_leaf[n])):
            members[g].add(n)
    return members


def _fewest(counts: Iterable[int], need: int) -> int | None:
    got, k = 0, 0
    for c in sorted((c for c in counts if c > 0), reverse=True):
        got += c
        k += 1
        if got >= need:
            return k
    return None if need > 0 else 0


def validate(fabric: Fabric, initial: ClusterState, jobs: list[JobRequest], placements: list[Placement],
             check_cost: bool = True, reserved: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Every violation found, as readable strings (empty: all good)."""
    f = fabric
    bad: list[str] = []
    by_id = {j.job_id: j for j in jobs}
    pos = {j.job_id: i for i, j in enumerate(jobs)}
    members = _group_nodes(f)
    level = [int(x) for x in f.group_level]
    # plain picture: free GPU ids per node, usable flag
    free = {n: set(initial.free_gpu_ids(n)) for n in range(f.n_nodes)}
    usable = [bool(u) for u in initial.usable]
    ngpu = [int(g) for g in f.node_gpus]
    type_masks = index_for(f).type_islands

    def islands_for(n: int, gpus: int) -> list[tuple[int, ...]]:
        """The GPU sets the job may take on node n (the one island rule, placer/islands.py)."""
        masks = island_masks(type_masks[int(f.node_type[n])], gpus)
        return [tuple(g for g in range(ngpu[n]) if m >> g & 1) for m in masks]

    def whole_free(n: int) -> bool:
        return usable[n] and len(free[n]) == ngpu[n]

    def qualifies(j: JobRequest, n: int, size: int | None) -> bool:
        if f.node_names[n] in reserved:  # hot spares: only replacements may use them
            return False
        t = f.node_types[int(f.node_type[n])]
        if not set(j.features) <= set(t.features) or f.node_names[n] in j.exclude:
            return False
        if j.partition_nodes is not None and f.node_names[n] not in j.partition_nodes:
            return False
        if j.gpu_model is not None and t.gpu_model.lower() != j.gpu_model:
            return False
        return ngpu[n] == size if size is not None else ngpu[n] >= j.gpus

    def job_size(j: JobRequest) -> int:
        if j.gpus_per_node is not None:
            return j.gpus_per_node
        sizes = [ngpu[n] for n in range(f.n_nodes) if set(j.features) <= set(f.node_types[int(f.node_type[n])].features)
                 and f.node_names[n] not in j.exclude
                 and (j.partition_nodes is None or f.node_names[n] in j.partition_nodes)
                 and (j.gpu_model is None or f.node_types[int(f.node_type[n])].gpu_model.lower() == j.gpu_model)]
        return max(sizes) if sizes else max(ngpu)

    seen = set()
    for p in placements:
        if p.job not in by_id:
            bad.append(f"{p.job}: no such job")
        if p.job in seen:
            bad.append(f"{p.job}: placed twice")
        seen.add(p.job)
    order = sorted((p for p in placements if p.job in by_id),
                   key=lambda p: (-by_id[p.job].priority, by_id[p.job].submit_time or 0.0, pos[p.job]))
    for p in order:
        j = by_id[p.job]
        if j.not_yet_honoured():
            if p.status != "unplaceable":
                bad.append(f"{p.job}: carries {j.not_yet_honoured()}, which placer does not honour, but is {p.status}")
            continue
        size = job_size(j)
        multi, need = j.multi_node(size), j.nodes_needed(size)
        # what fits now, by this validator's own counting
        per_leaf: dict[int, int] = {}
        for n in range(f.n_nodes):
            if not usable[n] or not qualifies(j, n, size if multi else None):
                continue
            if multi:
                ok = whole_free(n)
            else:
                ok = any(len(free[n] & set(isl)) >= j.gpus for isl in islands_for(n, j.gpus))
            if ok:
                per_leaf[int(f.node_leaf[n])] = per_leaf.get(int(f.node_leaf[n]), 0) + 1
        k_now = _fewest(per_leaf.values(), need)
        if p.status != "placed":
            fits = k_now is not None and (j.max_switches is None or k_now <= j.max_switches)
            if fits:
                bad.append(f"{p.job}: said {p.status} but fits now on {k_now} leaves")
            if p.status == "unplaceable":
                static: dict[int, int] = {}
                for n in range(f.n_nodes):
                    if f.node_state[n] == 0 and qualifies(j, n, size if multi else None):
                        static[int(f.node_leaf[n])] = static.get(int(f.node_leaf[n]), 0) + 1
                ks = _fewest(static.values(), need)
                if ks is not None and (j.max_switches is None or ks <= j.max_switches):
                    bad.append(f"{p.job}: said unplaceable but fits an empty fabric on {ks} leaves")
            continue
        # -- a placed job
        nodes = [f.node_index.get(name, -1) for name in p.nodes]
        if -1 in nodes:
            bad.append(f"{p.job}: unknown node in {p.nodes}")
            continue
        if len(set(nodes)) != len(nodes):
            bad.append(f"{p.job}: a node listed twice")
        if set(p.gpu_ids) != set(p.nodes):
            bad.append(f"{p.job}: gpu_ids nodes {sorted(p.gpu_ids)} differ from nodes {sorted(p.nodes)}")
            continue
        if len(nodes) != need:
            bad.append(f"{p.job}: {len(nodes)} nodes, needs {need}")
        total = sum(len(v) for v in p.gpu_ids.values())
        for n in nodes:
            name = f.node_names[n]
            ids = p.gpu_ids[name]
            if not usable[n]:
                bad.append(f"{p.job}: node {name} is down or drained")
            if not qualifies(j, n, size if multi else None):
                bad.append(f"{p.job}: node {name} does not qualify (features, GPU model, size or exclusion)")
            if len(set(ids)) != len(ids) or not set(ids) <= set(range(ngpu[n])):
                bad.append(f"{p.job}: bad GPU ids {ids} on {name}")
            if not set(ids) <= free[n]:
                bad.append(f"{p.job}: GPUs {sorted(set(ids) - free[n])} of {name} already given")
            if multi and sorted(ids) != list(range(ngpu[n])):
                bad.append(f"{p.job}: multi-node job must take whole node {name}, got GPUs {ids}")
            if not multi and not any(set(ids) <= set(isl) for isl in islands_for(n, j.gpus)):
                bad.append(f"{p.job}: GPUs {ids} of {name} span NVLink islands")
        if not multi and total != j.gpus:
            bad.append(f"{p.job}: {total} GPUs given, asked {j.gpus}")
        leaves = [int(f.node_leaf[n]) for n in nodes]
        leaf_set = set(leaves)
        if p.leaves != len(leaf_set):
            bad.append(f"{p.job}: reports {p.leaves} leaves, spans {len(leaf_set)}")
        if j.max_switches is not None and len(leaf_set) > j.max_switches:
            bad.append(f"{p.job}: spans {len(leaf_set)} leaves, max_switches {j.max_switches}")
        if p.leaf_lower_bound != k_now:
            bad.append(f"{p.job}: leaf_lower_bound {p.leaf_lower_bound}, recomputed {k_now}")
        # rank order: each leaf's nodes are contiguous
        runs = [leaves[0]] + [b for a, b in zip(leaves, leaves[1:]) if a != b]
        if len(runs) != len(leaf_set):
            bad.append(f"{p.job}: rank order leaves and re-enters a leaf")
        if check_cost:
            want = _cost(f, members, level, free, usable, ngpu, j, nodes, p.gpu_ids, multi)
            if p.cost != want:
                bad.append(f"{p.job}: cost {p.cost}, recomputed {want}")
        for n in nodes:
            free[n] -= set(p.gpu_ids[f.node_names[n]])
    return bad


def _cost(f: Fabric, members: dict[int, set[int]], level: list[int], free: dict[int, set[int]], usable: list[bool],
          ngpu: list[int], j: JobRequest, nodes: list[int], gpu_ids: dict[str, list[int]], multi: bool) -> int:
    """The cost's terms counted from first principles on the validator's own picture; the formula and its
    weights are the one definition (placer/cost.py)."""
    def whole(n: int) -> bool:
        return usable[n] and len(free[n]) == ngpu[n]

    def group_whole(g: int) -> bool:
        return all(whole(n) for n in members[g])

    taken_nodes = set(nodes) if multi else {n for n in nodes if len(gpu_ids[f.node_names[n]]) == ngpu[n]}
    leaves = {int(f.node_leaf[n]) for n in nodes}
    tier = 0
    broken_groups = 0
    for t in range(1, max(level) + 1):
        gs = {g for g in range(f.n_groups) if level[g] == t and members[g] & set(nodes)}
        tier += t * max(len(gs) - 1, 0)
        broken_groups += sum(1 for g in gs if group_whole(g) and not members[g] <= taken_nodes)
    broken_leaves = sum(1 for l in leaves if group_whole(l) and not members[l] <= taken_nodes)
    if multi:
        free_in = {l: sum(1 for n in members[l] if whole(n)) for l in leaves}
        took = {l: sum(1 for n in nodes if int(f.node_leaf[n]) == l) for l in leaves}
        partial = sum(1 for l in leaves if took[l] < free_in[l])
        leftover = sum(free_in.values()) - len(nodes)
        broken_nodes = 0
    else:
        n = nodes[0]
        leftover = len(free[n]) - len(gpu_ids[f.node_names[n]])
        partial = int(leftover > 0)
        broken_nodes = int(whole(n) and len(gpu_ids[f.node_names[n]]) < ngpu[n])
    return int(placement_cost(cost_weights(f), leaves=len(leaves), tier=tier, broken_nodes=broken_nodes,
                              broken_leaves=broken_leaves, broken_groups=broken_groups, partial=partial,
                              leftover=leftover))
