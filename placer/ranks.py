"""Rank order for 3D-parallel training: which GPU each rank gets, and what that costs per step.

Ranks follow Megatron-LM's default order, rank = tp + TP·(dp + DP·pp): tensor-parallel (TP) groups
are consecutive ranks, then data-parallel (DP), then pipeline (PP) stages. A layout assigns each
(tp, pp, dp) coordinate to a GPU slot; the hostfile lists, for rank 0, 1, …, the node its GPU is on
(srun --distribution=arbitrary / SLURM_HOSTFILE), and within a node the ranks take the node's GPUs
in index order (local rank = GPU).

Traffic per training step (the cost model): every TP group is a ring all-reduce (edges between ring
neighbours, weight w_tp each), every pipeline has point-to-point edges between adjacent stages (w_pp),
every DP group is a ring all-reduce across replicas (w_dp). An edge between two GPUs on one node (or
one NVLink domain) costs nothing on the network; otherwise it crosses the leaf tier, and if the two
leaves are under different level-1 groups it also crosses the pod tier. Reported: the weighted traffic
crossing each tier, and cost = cross_leaf + cross_pod (pod crossings use the leaf tier too).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from topology import Fabric, RequestError
from topology.hostlists import natural_key

from .index import index_for


@dataclass(frozen=True)
class Parallelism:
    tp: int
    pp: int
    dp: int
    w_tp: float = 1.0
    w_pp: float = 1.0
    w_dp: float = 1.0

    @property
    def size(self) -> int:
        return self.tp * self.pp * self.dp

    def rank(self, tp: int, pp: int, dp: int) -> int:
        return tp + self.tp * (dp + self.dp * pp)


Slot = tuple[int, int]  # (node index, GPU index)


def _slots_in_order(fabric: Fabric, gpu_ids: Mapping[str, Sequence[int]], node_order: list[str]) -> list[Slot]:
    return [(fabric.node_index[n], g) for n in node_order for g in sorted(gpu_ids[n])]


def _layout_from_nesting(par: Parallelism, slots: list[Slot], inner: str) -> list[Slot]:
    """Rank -> slot when slots are filled with TP innermost, then `inner` (pp or dp), then the other."""
    out: list[Slot] = [(-1, -1)] * par.size
    k = 0
    outer_n, inner_n = (par.dp, par.pp) if inner == "pp" else (par.pp, par.dp)
    for o in range(outer_n):
        for i in range(inner_n):
            for t in range(par.tp):
                pp, dp = (i, o) if inner == "pp" else (o, i)
                out[par.rank(t, pp, dp)] = slots[k]
                k += 1
    return out


def tree_order(fabric: Fabric, nodes: Sequence[str]) -> list[str]:
    ix = index_for(fabric)
    return sorted(nodes, key=lambda n: (int(ix.leaf_pos[fabric.node_leaf[fabric.node_index[n]]]), fabric.node_index[n]))


def _replica_packed_nodes(fabric: Fabric, nodes: Sequence[str], per_replica_nodes: int) -> list[str]:
    """Nodes in tree order, but whole replicas first within each leaf and the leaves' leftovers after,
    so as few pipelines as possible straddle two leaves."""
    ordered = tree_order(fabric, nodes)
    if per_replica_nodes <= 1:
        return ordered
    by_leaf: dict[int, list[str]] = {}
    for n in ordered:
        by_leaf.setdefault(int(fabric.node_leaf[fabric.node_index[n]]), []).append(n)
    whole, rest = [], []
    for leaf_nodes in by_leaf.values():
        k = len(leaf_nodes) // per_replica_nodes * per_replica_nodes
        whole.extend(leaf_nodes[:k])
        rest.extend(leaf_nodes[k:])
    return whole + rest


def placer_layout(fabric: Fabric, gpu_ids: Mapping[str, Sequence[int]], par: Parallelism) -> list[Slot]:
    """The cheapest of a few candidate layouts under the cost model: nodes in tree order (or with whole
    pipelines packed into leaves first), filled with TP innermost and then PP (pipelines together) or
    DP (data-parallel groups together)."""
    total = sum(len(v) for v in gpu_ids.values())
    if total != par.size:
        raise RequestError(f"tp x pp x dp = {par.size} but the job has {total} GPUs")
    gpn = max(len(v) for v in gpu_ids.values())
    nodes = list(gpu_ids)
    orders = [tree_order(fabric, nodes),
              _replica_packed_nodes(fabric, nodes, max(par.tp * par.pp // max(gpn, 1), 1)),
              _replica_packed_nodes(fabric, nodes, max(par.tp * par.dp // max(gpn, 1), 1))]
    best: tuple[float, list[Slot]] | None = None
    for order in orders:
        slots = _slots_in_order(fabric, gpu_ids, order)
        for inner in ("pp", "dp"):
            layout = _layout_from_nesting(par, slots, inner)
            cost = traffic(fabric, layout, par)["cost"]
            if best is None or cost < best[0]:
                best = (cost, layout)
    assert best is not None
    return _local_gpu_order(best[1])


def name_order_layout(fabric: Fabric, gpu_ids: Mapping[str, Sequence[int]], par: Parallelism) -> list[Slot]:
    """Slurm's default: tasks block-distributed over nodes sorted by name, ranks in that order."""
    nodes = sorted(gpu_ids, key=natural_key)
    slots = _slots_in_order(fabric, gpu_ids, nodes)
    if len(slots) != par.size:
        raise RequestError(f"tp x pp x dp = {par.size} but the job has {len(slots)} GPUs")
    return slots


def _local_gpu_order(layout: list[Slot]) -> list[Slot]:
    """Within a node, ranks get its GPUs in index order (local rank = GPU index), keeping the node."""
    by_node: dict[int, list[int]] = {}
    for r, (n, _) in enumerate(layout):
        by_node.setdefault(n, []).append(r)
    gpus: dict[int, list[int]] = {}
    for n, g in layout:
        gpus.setdefault(n, []).append(g)
    out = list(layout)
    for n, ranks in by_node.items():
        for r, g in zip(ranks, sorted(gpus[n])):
            out[r] = (n, g)
    return out


def edges(par: Parallelism) -> list[tuple[int, int, float]]:
    out: list[tuple[int, int, float]] = []
    for pp in range(par.pp):
        for dp in range(par.dp):
            if par.tp > 1:
                ring = [par.rank(t, pp, dp) for t in range(par.tp)]
                out += [(a, b, par.w_tp) for a, b in zip(ring, ring[1:] + ring[:1])][: par.tp if par.tp > 2 else 1]
            if pp + 1 < par.pp:
                out += [(par.rank(t, pp, dp), par.rank(t, pp + 1, dp), par.w_pp) for t in range(par.tp)]
    if par.dp > 1:
        for pp in range(par.pp):
            for t in range(par.tp):
                ring = [par.rank(t, pp, d) for d in range(par.dp)]
                out += [(a, b, par.w_dp) for a, b in zip(ring, ring[1:] + ring[:1])][: par.dp if par.dp > 2 else 1]
    return out


def traffic(fabric: Fabric, layout: list[Slot], par: Parallelism) -> dict[str, float]:
    ix = index_for(fabric)
    leaf = fabric.node_leaf
    pod = ix.anc[1] if ix.depth > 1 else None
    dom = fabric.node_domain
    node_local = cross_leaf = cross_pod = 0.0
    for a, b, w in edges(par):
        na, nb = layout[a][0], layout[b][0]
        if na == nb or (dom[na] >= 0 and dom[na] == dom[nb]):
            node_local += w
            continue
        la, lb = int(leaf[na]), int(leaf[nb])
        if la != lb:
            cross_leaf += w
            if pod is not None and pod[la] != pod[lb]:
                cross_pod += w
    return {"nvlink": node_local, "cross_leaf": cross_leaf, "cross_pod": cross_pod, "cost": cross_leaf + cross_pod}


def hostfile(fabric: Fabric, layout: list[Slot]) -> str:
    return "".join(f"{fabric.node_names[n]}\n" for n, _ in layout)


def rank_table(fabric: Fabric, layout: list[Slot], par: Parallelism) -> list[dict]:
    out = []
    for r, (n, g) in enumerate(layout):
        tp = r % par.tp
        dp = (r // par.tp) % par.dp
        pp = r // (par.tp * par.dp)
        out.append({"rank": r, "node": fabric.node_names[n], "gpu": g, "tp": tp, "pp": pp, "dp": dp,
                    "leaf": fabric.group_names[int(fabric.node_leaf[n])]})
    return out
