"""ClusterState: the mutable free/allocated/down picture of a Fabric, with per-group counts kept current.

Every allocate/release touches one node and walks its leaf's ancestor chain (a handful of groups), so
a decision never loops over all nodes; bulk rebuilds use numpy.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .fabric import MAX_GPUS_PER_NODE, Fabric, NodeState
from .problems import RequestError

# (GPUs of the node, GPU indices) -> bit mask; bounded, shared by every state
_MASKS: dict[tuple[int, tuple[int, ...]], int] = {}


class ClusterState:
    def __init__(self, fabric: Fabric) -> None:
        if fabric.n_nodes and int(fabric.node_gpus.max()) > MAX_GPUS_PER_NODE:
            raise RequestError(f"nodes with more than {MAX_GPUS_PER_NODE} GPUs are not supported")
        self.fabric = fabric
        full = (np.left_shift(np.uint64(1), fabric.node_gpus.astype(np.uint64)) - np.uint64(1)).astype(np.uint64)
        self.full_mask = full
        self.free_mask = full.copy()
        self.free_gpus = fabric.node_gpus.astype(np.int16).copy()
        self.usable = fabric.node_state == NodeState.UP
        # chain[l] = leaf l, its parent, ... padded with -1: the groups an update to a node touches
        depth = max(fabric.depth, 1)
        chain = np.full((fabric.n_leaves, depth), -1, dtype=np.int32)
        for leaf in range(fabric.n_leaves):
            anc = fabric.group_ancestors(leaf)
            chain[leaf, : len(anc)] = anc
        self.chain = chain
        # the same without the padding, as ints: a one-node update touches a handful of groups, where a
        # scalar loop beats numpy's fancy indexing (profiled: the walk of placer/timeline.py). Shared by copies
        self.leaf_groups = [tuple(int(g) for g in row if g >= 0) for row in chain]
        self.gpus_of: list[int] = fabric.node_gpus.tolist()  # per node, as ints for the one-node updates
        self.group_free_nodes = np.zeros(fabric.n_groups, dtype=np.int32)
        self.group_free_gpus = np.zeros(fabric.n_groups, dtype=np.int32)
        self.group_usable_nodes = np.zeros(fabric.n_groups, dtype=np.int32)
        # when known (trace durations in simulation, Slurm's EndTime live): per node, the time its running
        # jobs are expected to have ended, and the clock it is read against; a small job then goes where
        # it delays a node's return to whole-free the least (placer/choose.py). Shared, not copied, by copy()
        self.node_ends: np.ndarray | None = None
        self.clock: float | None = None
        self.recompute()

    # -- bulk --------------------------------------------------------------------------------------
    def whole_free(self) -> np.ndarray:
        """Per node: usable and every GPU free."""
        return self.usable & (self.free_mask == self.full_mask)

    def recompute(self) -> None:
        """Rebuild all group counts from the node arrays (arrays only, no per-node Python loop)."""
        f = self.fabric
        usable_gpus = np.where(self.usable, self.free_gpus, 0)
        for target, per_node in ((self.group_free_nodes, self.whole_free()),
                                 (self.group_free_gpus, usable_gpus),
                                 (self.group_usable_nodes, self.usable)):
            target[:] = 0
            target[: f.n_leaves] = np.bincount(f.node_leaf, weights=per_node, minlength=f.n_leaves).astype(np.int32)
            # ascending levels: a group's children all sit at lower levels (level = 1 + max child level),
            # so each group is complete before it is added to its parent, unbalanced trees included
            for level in range(0, f.depth - 1):
                kids = np.nonzero(f.group_level == level)[0]
                kids = kids[f.group_parent[kids] >= 0]
                np.add.at(target, f.group_parent[kids], target[kids])

    # -- one node at a time ------------------------------------------------------------------------
    def _apply(self, node: int, d_free_nodes: int, d_gpus: int, d_usable: int) -> None:
        groups = self.leaf_groups[self.fabric.node_leaf[node]]
        for counts, d in ((self.group_free_nodes, d_free_nodes), (self.group_free_gpus, d_gpus),
                          (self.group_usable_nodes, d_usable)):
            if d:
                for g in groups:
                    counts[g] += d

    def _mask(self, node: int, gpus: list[int]) -> int:
        """The bit mask of these GPU indices of `node` (checked against its GPU count), from a cache: a
        replay releases millions of the same few index lists (profiled: the walks of the scheduler)."""
        key = (self.gpus_of[node], tuple(gpus))
        m = _MASKS.get(key)
        if m is None:
            m = 0
            for g in gpus:
                if not 0 <= g < key[0]:
                    raise RequestError(f"node {self.fabric.node_names[node]} has no GPU index {g}")
                m |= 1 << int(g)
            if len(_MASKS) >= 4096:
                _MASKS.clear()
            _MASKS[key] = m
        return m

    def allocate(self, node: int, gpus: Iterable[int]) -> None:
        gpus = list(gpus)
        m = self._mask(node, gpus)
        free = int(self.free_mask[node])
        if free & m != m:
            raise RequestError(f"GPUs {gpus} of {self.fabric.node_names[node]} are not all free")
        was_whole = free == int(self.full_mask[node])
        self.free_mask[node] = free & ~m
        self.free_gpus[node] -= len(gpus)
        if self.usable[node]:
            self._apply(node, -1 if was_whole else 0, -len(gpus), 0)

    def allocate_many(self, items: Iterable[tuple[int, Iterable[int]]]) -> None:
        """Allocate several nodes' GPUs at once (a node may come more than once): checks first (nothing
        changes on an error), then one vectorised update of the group counts along every ancestor chain."""
        self._take(*self._merge_items(items, "free"))

    def release_many(self, items: Iterable[tuple[int, Iterable[int]]]) -> None:
        """Release several allocations at once (a node may come more than once, as jobs sharing it end):
        checks first (nothing changes on an error), then one vectorised update of the group counts."""
        self._give(*self._merge_items(items, "allocated"))

    def masks_of(self, items: Iterable[tuple[int, Iterable[int]]]) -> tuple[np.ndarray, np.ndarray]:
        """Allocations as arrays, (node, bit mask of its GPU indices) per item, each index checked against
        the node's GPU count: what `allocate_masks` and `release_masks` take (a timeline builds them once
        per pass)."""
        nodes: list[int] = []
        masks: list[int] = []
        for node, gpus in items:
            nodes.append(node)
            masks.append(self._mask(node, list(gpus)))
        return np.asarray(nodes, dtype=np.int64), np.asarray(masks, dtype=np.uint64)

    def allocate_masks(self, nodes: np.ndarray, masks: np.ndarray) -> None:
        """Take the GPUs of `masks_of`'s arrays at once (a node may come more than once): refused, nothing
        changed, when a GPU is taken already or comes twice. Reading Slurm's running jobs at 27,648 nodes
        one allocation at a time was a fifth of an apply pass (bench/admin.py)."""
        if nodes.size:
            self._take(*_merge(nodes, masks))

    def release_masks(self, nodes: np.ndarray, masks: np.ndarray) -> None:
        """Release the GPUs of `masks_of`'s arrays at once: refused, nothing changed, when a GPU is free
        already or comes twice. A look ahead over job ends starts with it past the ends where no test can
        pass yet (placer/timeline.py); one item at a time in Python that was a fifth of an apply pass."""
        if nodes.size:
            self._give(*_merge(nodes, masks))

    def _merge_items(self, items: Iterable[tuple[int, Iterable[int]]], what: str
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """`_merge` for a few items, in Python (numpy's set operations cost more than they save there)."""
        merged: dict[int, int] = {}
        for node, gpus in items:
            gpus = list(gpus)
            m = self._mask(node, gpus)
            had = merged.get(node, 0)
            if had & m:
                raise RequestError(f"GPUs {gpus} of {self.fabric.node_names[node]} are not all {what}")
            merged[node] = had | m
        return (np.fromiter(merged, dtype=np.int64, count=len(merged)),
                np.fromiter(merged.values(), dtype=np.uint64, count=len(merged)), None)

    def _take(self, idx: np.ndarray, merged: np.ndarray, twice: np.ndarray | None) -> None:
        """Allocate `merged` GPUs on the distinct nodes `idx` (`twice`: a node's items shared a GPU)."""
        if not idx.size:
            return
        bad = self.free_mask[idx] & merged != merged
        self._refuse(idx, merged, bad if twice is None else bad | twice, "free")
        usable = self.usable[idx]
        was_whole = usable & (self.free_mask[idx] == self.full_mask[idx])
        counts = np.bitwise_count(merged).astype(np.int32)
        self.free_mask[idx] &= ~merged
        self.free_gpus[idx] -= counts.astype(np.int16)
        self._add_on_chains(idx, -was_whole.astype(np.int32), -(counts * usable))

    def _give(self, idx: np.ndarray, merged: np.ndarray, twice: np.ndarray | None) -> None:
        """Release `merged` GPUs on the distinct nodes `idx`, as `_take` allocates them."""
        if not idx.size:
            return
        bad = self.free_mask[idx] & merged != 0
        self._refuse(idx, merged, bad if twice is None else bad | twice, "allocated")
        counts = np.bitwise_count(merged).astype(np.int32)
        self.free_mask[idx] |= merged
        self.free_gpus[idx] += counts.astype(np.int16)
        usable = self.usable[idx]
        became_whole = usable & (self.free_mask[idx] == self.full_mask[idx])  # a whole node had nothing to free
        self._add_on_chains(idx, became_whole.astype(np.int32), counts * usable)

    def _refuse(self, idx: np.ndarray, merged: np.ndarray, bad: np.ndarray, what: str) -> None:
        if not bad.any():
            return
        first = int(np.argmax(bad))
        node, m = int(idx[first]), int(merged[first])
        gpus = [g for g in range(int(self.fabric.node_gpus[node])) if m >> g & 1]
        raise RequestError(f"GPUs {gpus} of {self.fabric.node_names[node]} are not all {what}")

    def _add_on_chains(self, idx: np.ndarray, d_nodes: np.ndarray, d_gpus: np.ndarray) -> None:
        """Add per-node changes of whole free nodes and free GPUs to every group above each node."""
        chains = self.chain[self.fabric.node_leaf[idx]]  # (k, depth)
        flat = chains.ravel()
        ok = flat >= 0
        np.add.at(self.group_free_nodes, flat[ok], np.repeat(d_nodes, chains.shape[1])[ok])
        np.add.at(self.group_free_gpus, flat[ok], np.repeat(d_gpus, chains.shape[1])[ok])

    def release(self, node: int, gpus: Iterable[int]) -> None:
        gpus = list(gpus)
        m = self._mask(node, gpus)
        free = int(self.free_mask[node])
        if free & m:
            raise RequestError(f"GPUs {gpus} of {self.fabric.node_names[node]} are not all allocated")
        free |= m
        self.free_mask[node] = free
        self.free_gpus[node] += len(gpus)
        if self.usable[node]:
            self._apply(node, 1 if free == int(self.full_mask[node]) else 0, len(gpus), 0)

    def set_usable(self, node: int, usable: bool) -> None:
        """Mark a node down/drained (False) or back in service (True) for planning."""
        if bool(self.usable[node]) == usable:
            return
        whole = bool(self.free_mask[node] == self.full_mask[node])
        sign = 1 if usable else -1
        self.usable[node] = usable
        self._apply(node, sign * int(whole), sign * int(self.free_gpus[node]), sign)

    def free_gpu_ids(self, node: int) -> list[int]:
        m = int(self.free_mask[node])
        return [g for g in range(int(self.fabric.node_gpus[node])) if m >> g & 1]

    def set_ends(self, node_ends: np.ndarray, clock: float) -> None:
        """Expected whole-free time of each node (at or before `clock`: free now) and the clock."""
        self.node_ends, self.clock = node_ends, clock

    def copy(self) -> ClusterState:
        new = object.__new__(ClusterState)
        new.__dict__.update(self.__dict__)
        for k in ("free_mask", "free_gpus", "usable", "group_free_nodes", "group_free_gpus", "group_usable_nodes"):
            setattr(new, k, getattr(self, k).copy())
        return new


def _merge(nodes: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per distinct node, the OR of its items' masks, and whether two of its items share a GPU."""
    idx, inv = np.unique(nodes, return_inverse=True)
    merged = np.zeros(idx.size, dtype=np.uint64)
    np.bitwise_or.at(merged, inv, masks)
    bits = np.bincount(inv, weights=np.bitwise_count(masks), minlength=idx.size)
    return idx, merged, bits != np.bitwise_count(merged)
