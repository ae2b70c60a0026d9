"""When capacity frees: running jobs' expected ends walked in time order over a copy of the state.

One home for "what will the cluster look like at time T" for both clocks: the simulator's (trace
durations) and the live one (`placer apply`: Slurm's EndTime of each running job). The scheduler asks
`first_within_bound` where and when a job can start within its leaf bound, at most `until`: the
topology-aware reservation of issue 18 (the block within the bound that frees soonest).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np

from topology import ClusterState

from .bounds import empty_fabric_bounds, fits_in, leaf_counts
from .eligibility import Eligibility
from .engine import alternatives, best_of, job_eligibility, place_one
from .index import FabricIndex
from .jobs import JobRequest
from .types import Placement, PlannerConfig

# how long a multi-node job may wait for its leaf bound (docs/benchmarks.md, issue 18): at least
# DEFAULT_HOLD_S; a long job this share of its run time (time limit live), at most DEFAULT_HOLD_MAX_S
DEFAULT_HOLD_S = 14400.0  # the fewest checks missed at any hold, greedy or CP-SAT, with the two rules (benchmarks.md)
DEFAULT_HOLD_SHARE = 0.2
DEFAULT_HOLD_MAX_S = 86400.0
# the hold counts from when the job could first start on any nodes, not from its first fit by count:
# waiting for room is not waiting for locality (with small_jobs_by_end, greedy: 22 checks missed against 27)
DEFAULT_HOLD_FROM_ROOM = True
# a hold expected to last longer than this, and longer than DEFAULT_HOLD_IDLE_SHARE of the job's run time, is
# not taken when the GPUs free now, less what every other queued job asks for, would still hold the job:
# nothing would use the room it leaves idle (`hold_idles`; docs/benchmarks.md)
DEFAULT_HOLD_IDLE_S = 1800.0
DEFAULT_HOLD_IDLE_SHARE = 0.05


def hold_limit(run_time_s: float | None, hold_s: float, share: float, cap_s: float) -> float:
    """The longest a multi-node job of this run time may wait for a placement within its leaf bound:
    the weighted traffic comes from a few large, long jobs, for which a wait is cheap beside their run."""
    if hold_s <= 0 or share <= 0 or not run_time_s:  # hold_s 0 turns holding off
        return max(hold_s, 0.0)
    return min(max(hold_s, share * run_time_s), max(cap_s, hold_s))


@dataclass(frozen=True)
class HoldRule:
    """Placer's hold settings (config keys hold_s, hold_share, hold_max_s, hold_from_room)."""

    hold_s: float = DEFAULT_HOLD_S
    share: float = DEFAULT_HOLD_SHARE
    max_s: float = DEFAULT_HOLD_MAX_S
    from_room: bool = DEFAULT_HOLD_FROM_ROOM  # a job with no room now counts its hold from when room comes
    idle_s: float = DEFAULT_HOLD_IDLE_S  # `hold_idles`
    idle_share: float = DEFAULT_HOLD_IDLE_SHARE

    def limit(self, run_time_s: float | None) -> float:
        return hold_limit(run_time_s, self.hold_s, self.share, self.max_s)

    def idle_floor(self, run_time_s: float | None) -> float:
        return idle_floor(run_time_s, self.idle_s, self.idle_share)


def idle_floor(run_time_s: float | None, idle_s: float, share: float) -> float:
    """The longest hold `hold_idles` lets stand whatever the queue: `idle_s`, or `share` of a longer job's run
    time (a 5-day job held an hour keeps its locality for five days: 1,968 GPUs on 11 leaves instead of 8
    to save 1.9 idle hours was 0.83 point of Alibaba seed 2's excess pairs)."""
    return max(idle_s, share * (run_time_s or 0.0))


def hold_idles(wait_s: float, free_gpus: int, queued_gpus: int, own_gpus: int, floor_s: float) -> bool:
    """A hold for locality not worth taking: it would last longer than `floor_s` (`idle_floor`) while the
    GPUs free now, less what the other queued jobs ask for (`queued_gpus`), would still hold the job's own.
    Nothing queued could use the room the hold leaves idle, so the job starts now beyond its bound. At load
    the queue asks for more than is free and every hold stands (Alibaba seed 3's 2,048-GPU, 64-hour job held
    5.4 h with ~2,600 GPUs free and one job behind it: docs/benchmarks.md); a short hold is cheap either way."""
    return wait_s > floor_s and free_gpus - queued_gpus >= own_gpus


def room_for(ix: FabricIndex, state: ClusterState, job: JobRequest, cfg: PlannerConfig) -> np.ndarray:
    """The room `hold_idles` weighs for `job` (bool per node): the nodes that could ever take it (its
    partition, features, GPU model, node size; in service). Room it may not use idles whatever it does;
    the queue is counted on it too (the jobs that could use one of its nodes)."""
    return job_eligibility(ix, state, job, cfg).ready


Alloc = Sequence[tuple[int, Sequence[int]]]  # (node index, GPU indices) a running job holds


@dataclass(frozen=True)
class Release:
    """A running job's GPUs, free again at `at` (its expected end)."""

    at: float
    alloc: Alloc


Ends = Iterable[tuple[float, Alloc]]  # (end time, what frees then), in time order


class Timeline:
    """Releases sorted by time, once per pass or answer (`in_time_order`): every look ahead walks them in
    order, and sorting ~6,000 ends again in each one was a fifth of an apply pass at 97% busy
    (bench/admin.py). Their GPUs as flat arrays too, made on first use: a look ahead releases every end
    before its first possible time in one numpy step (`ahead_of`)."""

    def __init__(self, ordered: tuple[Release, ...]) -> None:
        self.releases = ordered
        self.times = np.fromiter((r.at for r in ordered), dtype=np.float64, count=len(ordered))
        self._flat: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._by_free: tuple[np.ndarray, np.ndarray] | None = None

    def __iter__(self) -> Iterator[Release]:
        return iter(self.releases)

    def __len__(self) -> int:
        return len(self.releases)

    def ahead_of(self, state: ClusterState, now: float, t: float, touched: list[int]) -> tuple[ClusterState, int]:
        """A copy of `state` with every release ending before `t` (each at `now` at the earliest) made at
        once, its nodes added to `touched`, and how many releases that was: a walk goes on from there."""
        k = int(np.searchsorted(self.times, t, side="left")) if t > now else 0
        ahead = state.copy()
        if k:
            nodes, masks, first = self._arrays(state)
            ahead.release_masks(nodes[: first[k]], masks[: first[k]])
            touched.extend(nodes[: first[k]].tolist())
        return ahead, k

    def by_free_time(self, free_at: np.ndarray) -> np.ndarray:
        """The nodes in order of `free_at` (the pass's per-node free times), sorted once per pass: each
        look ahead's first possible time reads it (a sort per job was a seventh of an apply pass)."""
        if self._by_free is None or self._by_free[0] is not free_at:
            self._by_free = free_at, np.argsort(free_at, kind="stable")
        return self._by_free[1]

    def _arrays(self, state: ClusterState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every release's GPUs as (node, bit mask) items in time order, and where each release's start."""
        if self._flat is None:
            nodes, masks = state.masks_of(item for r in self.releases for item in r.alloc)
            first = np.zeros(len(self.releases) + 1, dtype=np.int64)
            first[1:] = np.cumsum([len(r.alloc) for r in self.releases])
            self._flat = nodes, masks, first
        return self._flat


def in_time_order(releases: Iterable[Release]) -> Timeline:
    return Timeline(tuple(sorted(releases, key=lambda r: r.at)))


def walk(state: ClusterState, releases: Ends, until: float,
         touched: list[int] | None = None) -> Iterator[tuple[float, ClusterState]]:
    """The state after each distinct end time up to `until` (releases in time order), on one copy: a
    caller that keeps a yielded state must copy it. `touched`, when given, gets every node released so
    far, in order (at each yield: exactly the nodes that yielded state has released). A look ahead
    starts it past the ends where no test can pass yet (`_walk_on`)."""
    projected = state.copy()
    pending: float | None = None
    for at, alloc in releases:
        if at > until:
            break
        if pending is not None and at > pending:
            yield pending, projected
        for node, ids in alloc:
            projected.release(node, list(ids))
            if touched is not None:
                touched.append(node)
        pending = at
    if pending is not None:
        yield pending, projected


def static_leaf_bound(ix: FabricIndex, state: ClusterState, job: JobRequest,
                      cfg: PlannerConfig) -> tuple[int | None, bool]:
    """The fewest leaves the job could use on an empty fabric (its eligible nodes, all free; the best
    matching-OR alternative), and whether it takes whole nodes (a multi-node job: the only kind that
    waits for its bound)."""
    els = [job_eligibility(ix, state, job, cfg, a) for a in alternatives(job)]
    ks = [k for el in els if (k := empty_fabric_bounds(ix, el.static, el.nodes_needed).leaf) is not None]
    return min(ks, default=None), els[0].multi_node


def first_within_bound(ix: FabricIndex, state: ClusterState, job: JobRequest, cfg: PlannerConfig,
                       releases: Timeline, now: float, until: float, bound: int,
                       keep_off: np.ndarray | None = None, free_at: np.ndarray | None = None
                       ) -> tuple[float, Placement, ClusterState] | None:
    """The earliest time in [now, until] at which `job` can be placed within `bound` leaves, that
    placement (on nodes not in `keep_off`, reserved for others) and the projected state it was made on;
    None when no such time comes. `free_at` (placer.reserve.node_free_times of these releases, or
    earlier: a lower bound per node on when it is whole free) lets the walk skip, or not start, where
    the leaf test cannot pass yet."""

    def one(projected: ClusterState, el: Eligibility) -> Placement | None:
        if keep_off is not None:
            el.now = el.now & ~keep_off
        # cheap test first: the eligible nodes of each leaf cannot hold the job in `bound` leaves
        if not fits_in(leaf_counts(ix, el.now), el.nodes_needed, bound):
            return None
        p = place_one(ix, projected, job, cfg, el=el)
        return p if p.status == "placed" and p.leaves <= bound else None

    def at_most_bound(projected: ClusterState, el: Eligibility | None = None) -> Placement | None:
        if el is not None:
            return one(projected, el)
        # matching OR: each alternative on its own, every node of a placement meeting the same one
        tries = [p for a in alts if (p := one(projected, job_eligibility(ix, projected, job, cfg, a))) is not None]
        return best_of(tries) if tries else None

    alts = alternatives(job)
    el = job_eligibility(ix, state, job, cfg)  # any alternative: the gate's necessary test
    gate = _LeafGate(ix, el, bound, keep_off) if el.multi_node else None
    p = at_most_bound(state, el if len(alts) == 1 else None)
    if p is not None:
        return now, p, state
    if job.off_mask is not None:  # the walk (and `one`, `at_most_bound` in it) places the job as kept off ahead
        job = kept_off_ahead(state, job)
        el = job_eligibility(ix, state, job, cfg)
        gate = _LeafGate(ix, el, bound, keep_off) if el.multi_node else None
    not_before = (gate.first_possible(free_at, releases.by_free_time(free_at))
                  if gate is not None and free_at is not None else now)
    if not_before > until:
        return None
    touched: list[int] = []
    for at, projected in _walk_on(state, releases, now, until, touched, not_before):
        if gate is not None and not gate.may_fit(projected, touched):
            continue
        p = at_most_bound(projected)
        if p is not None:
            return at, p, projected.copy()
    return None


Later = tuple[float, Placement, ClusterState]  # when a block frees, the placement there, the state it was made on
OffAt = Callable[[JobRequest, float], JobRequest]  # the job kept off what it would run into if started then


def first_kept_off(job: JobRequest, now: float, search: Callable[[JobRequest], Later | None], off_at: OffAt | None
                   ) -> tuple[JobRequest, Later | None]:
    """`search`'s first block for `job` (first_within_bound) that nothing claims while the job would run there,
    with the job as placed there. `job` comes kept off what it would run into if started now (live: Slurm's
    reservations, `off_at` of now); a block that frees later is run on from then to the job's time limit,
    and may run into more. Then the job is kept off those too (`off_at` of that time) and the search runs
    again: each round adds a node of the block it found to the job's exclusions, so the rounds end."""
    while True:
        later = search(job)
        if off_at is None or later is None or later[0] <= now:
            return job, later
        wider = off_at(job, later[0])
        if set(wider.exclude).isdisjoint(later[1].nodes):
            return job, later
        if set(wider.exclude) <= set(job.exclude):  # the search ignored the exclusions: nothing to trust
            return job, None
        job = wider


def _walk_on(state: ClusterState, releases: Timeline, now: float, until: float, touched: list[int],
             not_before: float) -> Iterator[tuple[float, ClusterState]]:
    """`walk` over the timeline's ends (each at `now` at the earliest) up to `until`, yielding from
    `not_before` on: the ends before it are released in one step (Timeline.ahead_of)."""
    ahead, k = releases.ahead_of(state, now, not_before, touched)
    return walk(ahead, ((max(r.at, now), r.alloc) for r in releases.releases[k:]), until, touched)


class _LeafGate:
    """The cheap test of `first_within_bound` for a multi-node job, kept up to date as ends free nodes:
    per leaf, its nodes that can take the job (whole, free, eligible, not kept off). A walk only frees,
    so a node joins once and never leaves; an end time that adds none gives the last answer again.
    Eligibility and the placement are recomputed only where the test passes: in bench/admin.py's
    97%-busy case about once per job, against about 1,000 end times walked."""

    def __init__(self, ix: FabricIndex, el: Eligibility, bound: int, keep_off: np.ndarray | None) -> None:
        self.leaf_of = ix.fabric.node_leaf
        self.ready = el.ready if keep_off is None else el.ready & ~keep_off
        self.ok = el.now & self.ready
        self.counts = leaf_counts(ix, self.ok)
        self.need, self.bound = el.nodes_needed, bound
        self.seen = 0
        self.last = self._test()

    def _test(self) -> bool:
        return fits_in(self.counts, self.need, self.bound)

    def first_possible(self, free_at: np.ndarray, order: np.ndarray) -> float:
        """The first time the test can pass when each node is whole free from `free_at` on (inf: never):
        a binary search over the ready nodes in time order (`order`: Timeline.by_free_time), the
        per-leaf counts of a prefix only growing with it."""
        o = order[self.ready[order]]
        t = free_at[o]
        leaf = self.leaf_of[o]
        lo, hi = 0, int(np.searchsorted(t, math.inf, side="left"))  # the finite times come first
        end = hi
        while lo < hi:  # the first prefix that passes ends on a node freeing at the first time it can
            mid = (lo + hi) // 2
            if fits_in(np.bincount(leaf[: mid + 1], minlength=len(self.counts)), self.need, self.bound):
                hi = mid
            else:
                lo = mid + 1
        return float(t[lo]) if lo < end else math.inf

    def may_fit(self, projected: ClusterState, touched: list[int]) -> bool:
        new = np.unique(np.asarray(touched[self.seen:], dtype=np.int64))
        self.seen = len(touched)
        new = new[self.ready[new] & ~self.ok[new] & (projected.free_mask[new] == projected.full_mask[new])]
        if new.size:
            self.ok[new] = True
            np.add.at(self.counts, self.leaf_of[new], 1)
            self.last = self._test()
        return self.last


def kept_off_ahead(state: ClusterState, job: JobRequest) -> JobRequest:
    """`job` as a look ahead places it: its `off_mask` (nodes kept off now, as too few CPUs left) holds on
    only for nodes whose GPUs are all free now. On the others a running GPU job holds CPUs too and frees
    them when it ends in the timeline; on these, what holds them (a CPU-only job, one placer cannot see)
    is not in the timeline and never frees there."""
    if job.off_mask is None:
        return job
    whole = state.free_gpus == state.fabric.node_gpus
    return replace(job, off_mask=job.off_mask & whole)


def first_room(ix: FabricIndex, state: ClusterState, job: JobRequest, cfg: PlannerConfig,
               releases: Timeline, now: float, keep_off: np.ndarray | None = None,
               free_at: np.ndarray | None = None) -> float | None:
    """The first time in the timeline at which a multi-node job could start at all, in any number of
    leaves (enough eligible whole free nodes, not kept off; nodes of any matching-OR alternative: a
    bound from below); now if it can now, None if never. `free_at`: as first_within_bound takes it."""
    el = job_eligibility(ix, state, job, cfg)
    gate = _LeafGate(ix, el, ix.fabric.n_leaves, keep_off)  # every leaf allowed: enough nodes anywhere
    if gate.last:
        return now
    if job.off_mask is not None:
        gate = _LeafGate(ix, job_eligibility(ix, state, kept_off_ahead(state, job), cfg), ix.fabric.n_leaves,
                         keep_off)
    not_before = gate.first_possible(free_at, releases.by_free_time(free_at)) if free_at is not None else now
    if math.isinf(not_before):
        return None
    touched: list[int] = []
    for at, projected in _walk_on(state, releases, now, math.inf, touched, not_before):
        if gate.may_fit(projected, touched):
            return at
    return None


def hold_deadline(hold_from: float, limit: float, room: float | None, now: float) -> float:
    """Until when a multi-node job may wait for a placement within its bound: `limit` (HoldRule.limit)
    after `hold_from` (live: its submission), or, for a job that cannot start now on any nodes, after
    the first time it can (`first_room`): waiting for room is not waiting for locality (HoldRule's
    from_room; the simulator's scheduler counts the same way with hold_from_room)."""
    if room is None or room <= now:
        return hold_from + limit
    return max(hold_from, room) + limit


FitTest = Callable[[ClusterState], bool]


def first_time(state: ClusterState, releases: Ends, until: float, fits: FitTest) -> float | None:
    """The first end time up to `until` after which `fits` holds on the projected state (None: none)."""
    for at, projected in walk(state, releases, until):
        if fits(projected):
            return at
    return None
