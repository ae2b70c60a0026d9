"""Trace replay: the same scheduler for every policy; policies differ only in where jobs go.

Scheduling is FCFS with EASY backfill (or none), as Slurm's sched/backfill does in spirit: the queue
head starts when it fits; otherwise it gets a reservation at the earliest time it could fit (the
shadow time), and later jobs may start now if they fit and do not delay that reservation (they end
before the shadow time, or are placed on nodes the head does not need then). At most `bf_depth` jobs
are tried per pass, like Slurm's bf_max_job_test. Fit tests are O(1) from maintained counts; the
policy is asked only for a job that fits. Under `switches_wait_s` (Slurm's --switches=<bound>@wait
for every multi-node job) the wait runs from the job's first evaluation, and a waiting head reserves
its first projected placement within the bound before its deadline (else its placement at the
deadline).

Policies: `placer` (this project's planner), `slurm-tree` (Slurm 22.05 topology/tree, faithfully),
`slurm-tree-24.05`, and `first-fit` (lowest-named free nodes).
"""
from __future__ import annotations

import bisect
import heapq
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from topology import ClusterState, Fabric, RequestError

from .choose import fewest, leaf_counts
from .eligibility import Eligibility, eligibility
from .engine import place_one
from .index import FabricIndex, index_for
from .jobs import JobRequest
from .slurm_tree import slurm_tree_nodes
from .types import PlannerConfig

Alloc = list[tuple[int, list[int]]]
POLICIES = ("placer", "slurm-tree", "slurm-tree-24.05", "first-fit")


@dataclass(frozen=True)
class SimConfig:
    backfill: str = "easy"  # easy | none
    bf_depth: int = 100
    # like every multi-node job asking sbatch --switches=<its leaf bound>@<this>: a placement spanning
    # more leaves than the job needs on an empty fabric waits up to this long (0: off), for every policy
    switches_wait_s: float = 0.0
    planner: PlannerConfig = field(default_factory=lambda: PlannerConfig(time_limit_s=0.01))


# -- policies -----------------------------------------------------------------------------------------
def _lowest_gpus(ix: FabricIndex, state: ClusterState, node: int, g: int) -> list[int]:
    free = int(state.free_mask[node])
    masks = ix.type_islands[int(ix.fabric.node_type[node])]
    if max(bin(m).count("1") for m in masks) < g:
        masks = (sum(masks),)
    for m in masks:
        ids = [i for i in range(int(ix.fabric.node_gpus[node])) if (free & m) >> i & 1]
        if len(ids) >= g:
            return ids[:g]
    raise RequestError(f"node {ix.fabric.node_names[node]} cannot hold {g} GPUs")


def _whole(ix: FabricIndex, nodes: list[int]) -> Alloc:
    return [(n, list(range(int(ix.fabric.node_gpus[n])))) for n in nodes]


def policy_placer(cfg: PlannerConfig) -> Callable[..., Alloc | None]:
    def choose(ix: FabricIndex, state: ClusterState, job: JobRequest, el: Eligibility) -> Alloc | None:
        p = place_one(ix, state, job, cfg, el=el)
        if p.status != "placed":
            return None
        return [(ix.fabric.node_index[n], ids) for n, ids in p.gpu_ids.items()]

    return choose


def policy_slurm_tree(version: str) -> Callable[..., Alloc | None]:
    def choose(ix: FabricIndex, state: ClusterState, job: JobRequest, el: Eligibility) -> Alloc | None:
        nodes = slurm_tree_nodes(ix, el.now, el.nodes_needed, version)  # type: ignore[arg-type]
        if nodes is None:
            return None
        if el.multi_node:
            return _whole(ix, nodes)
        return [(nodes[0], _lowest_gpus(ix, state, nodes[0], job.gpus))]

    return choose


def policy_first_fit(ix: FabricIndex, state: ClusterState, job: JobRequest, el: Eligibility) -> Alloc | None:
    order = _name_order(ix)
    ok = order[el.now[order]]
    if ok.size < el.nodes_needed:
        return None
    if el.multi_node:
        return _whole(ix, [int(n) for n in ok[: el.nodes_needed]])
    n = int(ok[0])
    return [(n, _lowest_gpus(ix, state, n, job.gpus))]


def _name_order(ix: FabricIndex) -> np.ndarray:
    cached = getattr(ix, "_name_order", None)
    if cached is None:
        cached = np.asarray(sorted(range(ix.fabric.n_nodes), key=lambda i: ix.fabric.node_names[i]), dtype=np.int64)
        object.__setattr__(ix, "_name_order", cached)
    return cached


def make_policy(name: str, cfg: SimConfig) -> Callable[..., Alloc | None]:
    if name == "placer":
        return policy_placer(cfg.planner)
    if name == "slurm-tree":
        return policy_slurm_tree("22.05")
    if name == "slurm-tree-24.05":
        return policy_slurm_tree("24.05")
    if name == "first-fit":
        return policy_first_fit
    raise RequestError(f"unknown policy {name!r}; one of {', '.join(POLICIES)}")


# -- records and metrics ----------------------------------------------------------------------------------
@dataclass
class JobRecord:
    job: JobRequest
    status: str = "pending"  # placed | unplaceable | pending (never started before the trace ended)
    start: float | None = None
    end: float | None = None
    alloc: Alloc = field(default_factory=list)
    multi: bool = False
    nodes_needed: int = 1
    leaves: int = 0
    leaf_bound: int = 0  # fewest leaves on an empty fabric
    pods: int = 0
    pod_bound: int = 0
    cross_pairs: int = 0
    unavoidable_pairs: int = 0
    reason: str = ""
    switch_wait_from: float | None = None  # when the scheduler first evaluated its placement (--switches)
    leaf_bound_now: int = 0  # fewest leaves the nodes it was offered at its start could hold it in


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def multi_node_placed(records: list[JobRecord]) -> list[JobRecord]:
    """The jobs the leaf-bound figures are about: placed, on more than one whole node."""
    return [r for r in records if r.status == "placed" and r.multi and r.nodes_needed > 1]


def summarize_records(fabric: Fabric, records: list[JobRecord]) -> dict[str, Any]:
    placed = [r for r in records if r.status == "placed"]
    multi = multi_node_placed(records)
    waits = np.asarray([r.start - (r.job.submit_time or 0.0) for r in placed], dtype=float)
    gpu_s = sum(len(ids) * (r.end - r.start) for r in placed for _, ids in r.alloc)
    t0 = min((r.job.submit_time or 0.0) for r in records) if records else 0.0
    t1 = max((r.end for r in placed), default=t0)
    makespan = max(t1 - t0, 1e-9)
    # the busy period: until the last job started (after it, nothing waits, so no policy can do better)
    t_busy = max((r.start for r in placed), default=t0)
    busy_s = sum(len(ids) * (min(r.end, t_busy) - r.start) for r in placed for _, ids in r.alloc if r.start < t_busy)
    w = np.asarray([r.job.gpus * (r.end - r.start) / 3600.0 for r in multi], dtype=float)
    excess = np.asarray([r.cross_pairs - r.unavoidable_pairs for r in multi], dtype=float)
    allp = np.asarray([_pairs(r.nodes_needed) for r in multi], dtype=float)
    return {
        "jobs": len(records),
        "placed": len(placed),
        "unplaceable": sum(r.status == "unplaceable" for r in records),
        "never_started": sum(r.status == "pending" for r in records),
        "multi_node_jobs": len(multi),
        "at_leaf_lower_bound": (sum(r.leaves <= r.leaf_bound for r in multi) / len(multi)) if multi else None,
        "mean_leaves_over_bound": float(np.mean([r.leaves - r.leaf_bound for r in multi])) if multi else None,
        # beyond the bound although the nodes the policy was offered then allowed fewer leaves: the
        # policy's own share of the misses (the rest is the state the scheduler started the job in)
        "beyond_bound_by_choice": (sum(r.leaves > r.leaf_bound_now for r in multi) / len(multi)) if multi else None,
        "more_pods_than_needed": (sum(r.pods > r.pod_bound for r in multi) / len(multi)) if multi else None,
        "excess_cross_leaf_pairs": float((w * excess).sum() / (w * allp).sum()) if multi and (w * allp).sum() else 0.0,
        "mean_wait_s": float(waits.mean()) if waits.size else 0.0,
        "p95_wait_s": float(np.percentile(waits, 95)) if waits.size else 0.0,
        "utilisation": float(gpu_s / (fabric.total_gpus * makespan)),
        "busy_period_s": float(t_busy - t0),
        "utilisation_busy_period": float(busy_s / (fabric.total_gpus * max(t_busy - t0, 1e-9))),
        "makespan_s": float(makespan),
    }


# -- the simulator -----------------------------------------------------------------------------------------
class Simulator:
    def __init__(self, fabric: Fabric, policy: str, cfg: SimConfig | None = None,
                 progress: Callable[[int], None] | None = None) -> None:
        self.fabric, self.policy_name, self.cfg = fabric, policy, cfg or SimConfig()
        if self.cfg.backfill not in ("easy", "none"):
            raise RequestError(f"backfill must be easy or none, got {self.cfg.backfill!r}")
        self.ix = index_for(fabric)
        self.choose = make_policy(policy, self.cfg)
        self.progress = progress
        self.state = ClusterState(fabric)
        f = fabric
        self.usable = self.state.usable.copy()
        self.max_gpus = int(f.node_gpus.max())
        self.sizes = sorted({int(g) for g in f.node_gpus.tolist()})
        self.node_free_time = np.full(f.n_nodes, -np.inf)  # when a node becomes whole free again
        self.free_hist = np.bincount(np.where(self.usable, self.state.free_gpus, 0)[self.usable],
                                     minlength=self.max_gpus + 1).astype(np.int64)
        self.node_jobs: dict[int, dict[int, tuple[float, int]]] = {}
        self.ends: list[tuple[float, int]] = []  # running jobs by end time (for single-node shadows)
        # static bounds per node size: leaf and pod counts of usable nodes
        self._static: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    # -- bookkeeping -----------------------------------------------------------------------------------
    def _hist_move(self, node: int, before: int, after: int) -> None:
        if self.usable[node]:
            self.free_hist[before] -= 1
            self.free_hist[after] += 1

    def _start(self, j: int, rec: JobRecord, alloc: Alloc, t: float) -> None:
        end = t + float(rec.job.duration or 0.0)
        before = {n: int(self.state.free_gpus[n]) for n, _ in alloc}
        self.state.allocate_many(alloc)
        for n, ids in alloc:
            self._hist_move(n, before[n], int(self.state.free_gpus[n]))
            self.node_free_time[n] = max(self.node_free_time[n], end)
            self.node_jobs.setdefault(n, {})[j] = (end, len(ids))
        rec.status, rec.start, rec.end, rec.alloc = "placed", t, end, alloc
        self._measure(rec)
        heapq.heappush(self.heap, (end, j))
        bisect.insort(self.ends, (end, j))

    def _finish(self, j: int, rec: JobRecord) -> None:
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

    def _measure(self, rec: JobRecord) -> None:
        f, ix = self.fabric, self.ix
        nodes = [n for n, _ in rec.alloc]
        per_leaf: dict[int, int] = {}
        for n in nodes:
            leaf = int(f.node_leaf[n])
            per_leaf[leaf] = per_leaf.get(leaf, 0) + 1
        rec.leaves = len(per_leaf)
        rec.pods = len({int(ix.anc[1][l]) for l in per_leaf}) if ix.depth > 1 else 1
        k = len(nodes)
        rec.cross_pairs = _pairs(k) - sum(_pairs(c) for c in per_leaf.values())

    def _bounds(self, rec: JobRecord, size: int) -> None:
        if size not in self._static:
            mask = self.usable & (self.fabric.node_gpus == size)
            leaf = np.bincount(self.fabric.node_leaf[mask], minlength=self.fabric.n_leaves)
            pod = np.bincount(self.ix.anc[1][self.fabric.node_leaf[mask]], minlength=self.fabric.n_groups) \
                if self.ix.depth > 1 else np.asarray([mask.sum()])
            self._static[size] = (np.sort(leaf)[::-1], pod)
        leaf_sorted, pod = self._static[size]
        n = rec.nodes_needed
        rec.leaf_bound = fewest(leaf_sorted, n) or 0
        rec.pod_bound = fewest(pod, n) or 0
        best, rem = 0, n  # fewest cross-leaf pairs on an empty fabric: fill the largest leaves
        for c in leaf_sorted.tolist():
            if rem <= 0:
                break
            take = min(c, rem)
            best += _pairs(take)
            rem -= take
        rec.unavoidable_pairs = _pairs(n) - best

    # -- fit tests -------------------------------------------------------------------------------------
    def _job_shape(self, job: JobRequest) -> tuple[bool, int, int]:
        size = job.gpus_per_node or self.max_gpus
        multi = job.exclusive or job.gpus > size or (job.gpus_per_node is not None and job.gpus > job.gpus_per_node)
        return multi, size, (math.ceil(job.gpus / size) if multi else 1)

    def _whole_free(self, size: int) -> int:
        if len(self.sizes) == 1:
            root = int(np.nonzero(self.fabric.group_parent < 0)[0][0])
            return int(self.state.group_free_nodes[root])
        wf = self.state.whole_free() & (self.fabric.node_gpus == size)
        return int(wf.sum())

    def _quick_fits(self, rec: JobRecord, size: int) -> bool:
        if rec.multi:
            return self._whole_free(size) >= rec.nodes_needed
        return bool(self.free_hist[rec.job.gpus:].sum() > 0)

    # -- EASY backfill's reservation for the queue head ------------------------------------------------
    def _shadow(self, rec: JobRecord, size: int, t: float) -> tuple[float, Any]:
        if rec.multi:
            ok = self.usable & (self.fabric.node_gpus == size)
            times = np.maximum(self.node_free_time[ok], t)
            n = rec.nodes_needed
            if times.size < n:
                return math.inf, None
            shadow = float(np.partition(times, n - 1)[n - 1])
            # as Slurm's backfill does: the head's reservation is the node set the policy would choose
            # on the projected state at the shadow time; backfill must keep off those nodes
            projected = self.state.copy()
            i = self._release_until(projected, 0, shadow)
            alloc = self._choose_on(projected, rec)
            if alloc is None:  # cannot happen by construction; fall back to counting
                counted = set(np.nonzero(ok & (self.node_free_time <= shadow))[0].tolist())
                return shadow, {"count": len(counted), "counted": counted}
            deadline = self._switch_deadline(rec, t)
            if t < deadline and self._leaves(alloc) > rec.leaf_bound:
                # still waiting under --switches: a placement beyond the bound would not start, so the
                # reservation is the first projected one within it before the deadline, else the deadline's
                later = self._within_bound_later(projected, i, rec, size, deadline)
                if later is not None:
                    shadow, alloc = later
            return shadow, {"reserved": {node for node, _ in alloc}}
        g = rec.job.gpus
        free: dict[int, int] = {}
        shadow = math.inf
        for end, j in self.ends:
            if end > shadow:
                break
            for n, ids in self.records[j].alloc:
                if not self.usable[n]:
                    continue
                free[n] = free.get(n, int(self.state.free_gpus[n])) + len(ids)
                if free[n] >= g:
                    shadow = min(shadow, end)
        fitting = {n: f for n, f in free.items() if f >= g}
        return shadow, {"free": fitting}

    def _release_until(self, projected: ClusterState, i: int, until: float) -> int:
        """Release on `projected` the running jobs self.ends[i:] that end by `until`; the next index."""
        while i < len(self.ends) and self.ends[i][0] <= until:
            for node, ids in self.records[self.ends[i][1]].alloc:
                projected.release(node, ids)
            i += 1
        return i

    def _choose_on(self, projected: ClusterState, rec: JobRecord) -> Alloc | None:
        el = eligibility(self.ix, projected, rec.job)
        return self.choose(self.ix, projected, rec.job, el) if int(el.now.sum()) >= el.nodes_needed else None

    def _leaves(self, alloc: Alloc) -> int:
        return len({int(self.fabric.node_leaf[n]) for n, _ in alloc})

    def _within_bound_later(self, projected: ClusterState, i: int, rec: JobRecord, size: int,
                            deadline: float) -> tuple[float, Alloc] | None:
        """Walk later job ends up to `deadline`: the first time the policy places `rec` within its bound;
        failing that, its placement at the deadline (when the job will start anyway): the fewest leaves
        that waiting can buy, protected from backfill meanwhile."""
        while i < len(self.ends) and self.ends[i][0] <= deadline:
            when = self.ends[i][0]
            i = self._release_until(projected, i, when)
            if self._bound_out_of_reach(rec, size, projected):
                continue
            alloc = self._choose_on(projected, rec)
            if alloc is not None and self._leaves(alloc) <= rec.leaf_bound:
                return when, alloc
        alloc = self._choose_on(projected, rec)
        return (deadline, alloc) if alloc is not None else None

    def _keeps_reservation(self, head: JobRecord, shadow: float, info: Any, alloc: Alloc, end: float) -> bool:
        if end <= shadow or info is None:
            return True
        if head.multi and "reserved" in info:
            return not any(n in info["reserved"] for n, _ in alloc)
        if head.multi:
            lost = sum(1 for n, _ in alloc if n in info["counted"])
            return info["count"] - lost >= head.nodes_needed
        g = head.job.gpus
        fitting = info["free"]
        still = sum(1 for n, f in fitting.items() if f - sum(len(ids) for m, ids in alloc if m == n) >= g)
        return still >= 1

    def _commit_reservation(self, head: JobRecord, info: Any, alloc: Alloc, end: float, shadow: float) -> None:
        if info is None or end <= shadow:
            return
        if head.multi and "reserved" in info:
            return
        if head.multi:
            for n, _ in alloc:
                if n in info["counted"]:
                    info["counted"].discard(n)
                    info["count"] -= 1
        else:
            for n, ids in alloc:
                if n in info["free"]:
                    info["free"][n] -= len(ids)

    # -- the run -----------------------------------------------------------------------------------------
    def run(self, jobs: list[JobRequest]) -> list[JobRecord]:
        self.records = [JobRecord(j) for j in jobs]
        self.heap: list[tuple[float, int]] = []
        self.timers: list[float] = []  # when jobs waiting under --switches give up waiting
        self.timer_set: set[int] = set()
        order = sorted(range(len(jobs)), key=lambda i: (jobs[i].submit_time or 0.0, -jobs[i].priority, i))
        arrivals = 0
        queue: list[int] = []
        shapes: dict[int, tuple[bool, int, int]] = {}
        done = 0
        while arrivals < len(order) or self.heap or (self.timers and queue):
            t_arr = jobs[order[arrivals]].submit_time or 0.0 if arrivals < len(order) else math.inf
            t_end = self.heap[0][0] if self.heap else math.inf
            t_timer = self.timers[0] if self.timers else math.inf
            if t_timer < min(t_arr, t_end) and not queue:
                self.timers.clear()
                t_timer = math.inf
            t = min(t_arr, t_end, t_timer)
            while self.timers and self.timers[0] <= t:
                heapq.heappop(self.timers)
            while self.heap and self.heap[0][0] <= t:
                _, j = heapq.heappop(self.heap)
                self._finish(j, self.records[j])
            while arrivals < len(order) and (jobs[order[arrivals]].submit_time or 0.0) <= t:
                j = order[arrivals]
                arrivals += 1
                rec = self.records[j]
                multi, size, need = self._job_shape(rec.job)
                rec.multi, rec.nodes_needed = multi, need
                shapes[j] = (multi, size, need)
                self._bounds(rec, size)
                if (multi and rec.leaf_bound == 0) or (not multi and size < rec.job.gpus) or \
                        (rec.job.duration or 0) <= 0:
                    rec.status = "unplaceable"
                    rec.reason = "larger than the fabric's nodes of its size" if (rec.job.duration or 0) > 0 \
                        else "no duration"
                    done += 1
                    continue
                queue.append(j)
            done += self._schedule(queue, shapes, t)
            if self.progress:
                self.progress(arrivals)
        return self.records

    def _try(self, rec: JobRecord, size: int, t: float, avoid: np.ndarray | None = None) -> Alloc | None:
        """The policy's placement for `rec` now, or None. `avoid`: nodes reserved for the queue head
        that this job may not use (as Slurm's backfill tests a job only on the nodes free in its window)."""
        if not self._quick_fits(rec, size):
            return None
        waiting = t < self._switch_deadline(rec, t)
        # no policy can stay within the bound when the whole free nodes of each leaf cannot: skip asking
        if waiting and self._bound_out_of_reach(rec, size, self.state):
            self._wake_at(rec)
            return None
        el = eligibility(self.ix, self.state, rec.job)
        if avoid is not None:
            el.now = el.now & ~avoid
        if int(el.now.sum()) < el.nodes_needed:
            return None
        alloc = self.choose(self.ix, self.state, rec.job, el)
        if alloc is not None and waiting and self._leaves(alloc) > rec.leaf_bound:
            self._wake_at(rec)
            return None
        if alloc is not None and rec.multi:
            rec.leaf_bound_now = fewest(leaf_counts(self.ix, self.state, el), rec.nodes_needed) or 0
        return alloc

    def _wake_at(self, rec: JobRecord) -> None:
        """Slurm's --switches: wait (boundedly) for a placement within the bound; wake up at the end."""
        if id(rec) not in self.timer_set:
            self.timer_set.add(id(rec))
            heapq.heappush(self.timers, self._switch_deadline(rec, math.inf))

    def _switch_deadline(self, rec: JobRecord, t: float) -> float:
        """When a multi-node job stops waiting for a placement within its bound (-inf: it never waits).
        The wait counts from the scheduler's first evaluation of its placement, as Slurm's
        wait4switch_start does, not from submission: a job deep in a long queue keeps its full wait."""
        if not rec.multi or self.cfg.switches_wait_s <= 0:
            return -math.inf
        if rec.switch_wait_from is None:
            rec.switch_wait_from = t
        return rec.switch_wait_from + self.cfg.switches_wait_s

    def _bound_out_of_reach(self, rec: JobRecord, size: int, state: ClusterState) -> bool:
        """No policy can place `rec` within its leaf bound on `state`: the whole free nodes of each leaf
        cannot hold it in that many leaves."""
        return (fewest(self._leaf_whole_free(size, state), rec.nodes_needed) or math.inf) > rec.leaf_bound

    def _leaf_whole_free(self, size: int, state: ClusterState) -> np.ndarray:
        """Whole free nodes of this size per leaf (of the current state, or a projected one)."""
        nl = self.fabric.n_leaves
        if len(self.sizes) == 1:
            return state.group_free_nodes[:nl]
        wf = state.whole_free() & (self.fabric.node_gpus == size)
        return np.bincount(self.fabric.node_leaf[wf], minlength=nl)

    def _schedule(self, queue: list[int], shapes: dict[int, tuple[bool, int, int]], t: float) -> int:
        started = 0
        while queue:
            j = queue[0]
            alloc = self._try(self.records[j], shapes[j][1], t)
            if alloc is None:
                break
            self._start(j, self.records[j], alloc, t)
            queue.pop(0)
            started += 1
        if self.cfg.backfill != "easy" or len(queue) < 2:
            return started
        head = self.records[queue[0]]
        shadow, info = self._shadow(head, shapes[queue[0]][1], t)
        reserved = None
        if info is not None and "reserved" in info:
            reserved = np.zeros(self.fabric.n_nodes, dtype=bool)
            reserved[list(info["reserved"])] = True
        k, tried = 1, 0
        while k < len(queue) and tried < self.cfg.bf_depth:
            j = queue[k]
            tried += 1
            rec = self.records[j]
            end = t + float(rec.job.duration or 0.0)
            alloc = self._try(rec, shapes[j][1], t, reserved if end > shadow else None)
            if alloc is None:
                k += 1
                continue
            if not self._keeps_reservation(head, shadow, info, alloc, end):
                k += 1
                continue
            self._commit_reservation(head, info, alloc, end, shadow)
            self._start(j, rec, alloc, t)
            queue.pop(k)
            started += 1
        return started


def utilisation_in(fabric: Fabric, records: list[JobRecord], t0: float, t1: float) -> float:
    """Share of the fabric's GPU-time in [t0, t1] that jobs used: compare policies over one window."""
    if t1 <= t0:
        return 0.0
    used = sum(len(ids) * max(min(r.end, t1) - max(r.start, t0), 0.0)
               for r in records if r.status == "placed" for _, ids in r.alloc)
    return used / (fabric.total_gpus * (t1 - t0))


def common_busy_window(runs: dict[str, list[JobRecord]]) -> tuple[float, float]:
    """From the first submit to the latest last-start over all policies."""
    t0 = min((r.job.submit_time or 0.0) for recs in runs.values() for r in recs)
    t1 = max((r.start for recs in runs.values() for r in recs if r.start is not None), default=t0)
    return t0, t1


def simulate(fabric: Fabric, jobs: list[JobRequest], policy: str, cfg: SimConfig | None = None,
             progress: Callable[[int], None] | None = None) -> tuple[list[JobRecord], dict[str, Any]]:
    records = Simulator(fabric, policy, cfg, progress).run(jobs)
    return records, summarize_records(fabric, records)


def record_dict(fabric: Fabric, r: JobRecord) -> dict[str, Any]:
    names = [fabric.node_names[n] for n, _ in r.alloc]
    return {"job": r.job.job_id, "status": r.status, "gpus": r.job.gpus, "nodes": names,
            "gpu_ids": {fabric.node_names[n]: ids for n, ids in r.alloc}, "leaves": r.leaves,
            "leaf_lower_bound": r.leaf_bound, "leaf_bound_at_start": r.leaf_bound_now, "pods": r.pods,
            "pod_lower_bound": r.pod_bound, "cost": None,
            "start": r.start, "end": r.end, "submit": r.job.submit_time,
            "wait": (r.start - (r.job.submit_time or 0.0)) if r.start is not None else None,
            "reason": r.reason or ("" if r.status == "placed" else "did not start before the trace ended")}
