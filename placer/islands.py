"""Which GPUs of a node a job of a few GPUs takes: the one rule for NVLink islands.

A job of `gpus` GPUs on one node stays inside one NVLink island, unless it is larger than every island
of the node: then anywhere on the node. Islands are bitmasks of GPU indices (FabricIndex.type_islands).
"""
from __future__ import annotations

import numpy as np

from topology import ClusterState, RequestError

from .index import FabricIndex


def island_masks(masks: tuple[int, ...], gpus: int) -> tuple[int, ...]:
    """The GPU sets (bitmasks) a job of `gpus` GPUs may be placed within."""
    if max(bin(m).count("1") for m in masks) < gpus:  # larger than any island: anywhere on the node
        return (sum(masks),)
    return masks


def pick_gpus(ix: FabricIndex, state: ClusterState, node: int, gpus: int, tightest: bool = True) -> list[int]:
    """Free GPUs of `node` for a job of `gpus`, lowest indices first, from the tightest island that holds
    them (placer), or from the first island in index order that does (`tightest=False`: Slurm's way)."""
    free = int(state.free_mask[node])
    best: list[int] | None = None
    for m in island_masks(ix.type_islands[int(ix.fabric.node_type[node])], gpus):
        ids = [i for i in range(int(ix.fabric.node_gpus[node])) if (free & m) >> i & 1]
        if len(ids) >= gpus and (best is None or len(ids) < len(best)):
            best = ids
            if not tightest:
                break
    if best is None:
        raise RequestError(f"node {ix.fabric.node_names[node]} cannot hold {gpus} GPUs")
    return best[:gpus]


def best_island_free(ix: FabricIndex, state: ClusterState, gpus: int) -> np.ndarray:
    """Per node: free GPUs of the tightest island holding `gpus` (-1 where none does)."""
    f = ix.fabric
    best = np.full(f.n_nodes, -1, dtype=np.int64)
    if all(len(m) == 1 for m in ix.type_islands):  # every node all-to-all: the free count is the answer
        free = state.free_gpus.astype(np.int64)
        return np.where(free >= gpus, free, -1)
    for t, masks in enumerate(ix.type_islands):
        nodes = np.nonzero(f.node_type == t)[0]
        if not nodes.size:
            continue
        free_masks = state.free_mask[nodes]
        tight = np.full(nodes.size, np.iinfo(np.int64).max, dtype=np.int64)
        for m in island_masks(masks, gpus):
            cnt = np.bitwise_count(free_masks & np.uint64(m)).astype(np.int64)
            ok = cnt >= gpus
            tight = np.where(ok & (cnt < tight), cnt, tight)
        best[nodes] = np.where(tight == np.iinfo(np.int64).max, -1, tight)
    return best
