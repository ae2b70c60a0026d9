"""The simulated cluster: the ClusterState plus what scheduling needs in O(1) or O(log n) per event
(a histogram of free GPUs per node, when each node frees, running jobs by end time)."""
from __future__ import annotations

import bisect

import numpy as np

from topology import ClusterState, Fabric

from ..index import FabricIndex
from .records import Alloc, JobRecord


class SimCluster:
    def __init__(self, fabric: Fabric, ix: FabricIndex) -> None:
        self.fabric, self.ix = fabric, ix
        self.state = ClusterState(fabric)
        self.usable = self.state.usable.copy()
        self.max_gpus = int(fabric.node_gpus.max())
        self.sizes = sorted({int(g) for g in fabric.node_gpus.tolist()})
        self.node_free_time = np.full(fabric.n_nodes, -np.inf)  # when a node becomes whole free again
        self.free_hist = np.bincount(np.where(self.usable, self.state.free_gpus, 0)[self.usable],
                                     minlength=self.max_gpus + 1).astype(np.int64)
        self.node_jobs: dict[int, dict[int, tuple[float, int]]] = {}
        self.ends: list[tuple[float, int]] = []  # running jobs by end time (for shadows and projections)
        self.records: list[JobRecord] = []

    # -- jobs start and end -----------------------------------------------------------------------------
    def _hist_move(self, node: int, before: int, after: int) -> None:
        if self.usable[node]:
            self.free_hist[before] -= 1
            self.free_hist[after] += 1

    def start(self, j: int, alloc: Alloc, end: float) -> None:
        before = {n: int(self.state.free_gpus[n]) for n, _ in alloc}
        self.state.allocate_many(alloc)
        for n, ids in alloc:
            self._hist_move(n, before[n], int(self.state.free_gpus[n]))
            self.node_free_time[n] = max(self.node_free_time[n], end)
            self.node_jobs.setdefault(n, {})[j] = (end, len(ids))
        bisect.insort(self.ends, (end, j))

    def finish(self, j: int, rec: JobRecord) -> None:
        for n, ids in rec.alloc:
            before = int(self.state.free_gpus[n])
            self.state.release(n, ids)
            self._hist_move(n, before, int(self.state.free_gpus[n]))
            jobs = self.node_jobs.get(n)
            if jobs is not None:
                jobs.pop(j, None)
                if not jobs:
                    del self.node_jobs[n]
        i = bisect.bisect_left(self.ends, (rec.end, j))
        if i < len(self.ends) and self.ends[i] == (rec.end, j):
            del self.ends[i]

    # -- fit tests from maintained counts ----------------------------------------------------------------
    def whole_free(self, size: int) -> int:
        """Whole free nodes of this size."""
        if len(self.sizes) == 1:
            roots = np.nonzero(self.fabric.group_parent < 0)[0]  # several on a fabric of disjoint trees
            return int(self.state.group_free_nodes[roots].sum())
        wf = self.state.whole_free() & (self.fabric.node_gpus == size)
        return int(wf.sum())

    def quick_fits(self, rec: JobRecord) -> bool:
        if rec.multi:
            return self.whole_free(rec.size) >= rec.nodes_needed
        return bool(self.free_hist[rec.job.gpus:].sum() > 0)

    def leaf_whole_free(self, size: int, state: ClusterState) -> np.ndarray:
        """Whole free nodes of this size per leaf (of the current state, or a projected one)."""
        nl = self.fabric.n_leaves
        if len(self.sizes) == 1:
            return state.group_free_nodes[:nl]
        wf = state.whole_free() & (self.fabric.node_gpus == size)
        return np.bincount(self.fabric.node_leaf[wf], minlength=nl)

    # -- projections (what frees when) -------------------------------------------------------------------
    def release_until(self, projected: ClusterState, i: int, until: float) -> int:
        """Release on `projected` the running jobs ends[i:] that end by `until`; the next index."""
        while i < len(self.ends) and self.ends[i][0] <= until:
            for node, ids in self.records[self.ends[i][1]].alloc:
                projected.release(node, ids)
            i += 1
        return i

    def leaves(self, alloc: Alloc) -> int:
        return len({int(self.fabric.node_leaf[n]) for n, _ in alloc})
