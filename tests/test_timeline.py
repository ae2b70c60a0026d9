"""placer/timeline.py: `first_within_bound`'s kept-up-to-date leaf test gives the answer of testing every
end time from scratch (full eligibility on each projected state), on random fabrics, loads and ends; so
does `first_room` (when a job could start at all), and the hold counts from room when there is none now.
Hot spares stay out of every answer, and a matching-OR job (`-C "[a|b]"`) is bounded and reserved on one
alternative."""
from __future__ import annotations

import random
from collections.abc import Iterable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from placer.bounds import fewest, fits_in, leaf_counts
from placer.eligibility import eligibility
from placer.engine import place_one
from placer.index import FabricIndex, index_for, spare_mask
from placer.jobs import JobRequest
from placer.reserve import node_free_times
from placer.timeline import (
    Release,
    Timeline,
    first_room,
    first_within_bound,
    hold_deadline,
    in_time_order,
    static_leaf_bound,
    walk,
)
from placer.types import Placement, PlannerConfig
from placer.why import Running
from tests.helpers import random_spec
from tests.test_constraints import FABRIC as OR_FABRIC
from topology import ClusterState, RequestError, build_fabric

NOW = 1000.0


def _reference(ix: FabricIndex, state: ClusterState, job: JobRequest, cfg: PlannerConfig,
               releases: Iterable[Release], bound: int, keep_off: np.ndarray | None
               ) -> tuple[float, Placement] | None:
    """Every end time tested from scratch: eligibility, the per-leaf count, then the placement."""
    def test(projected: ClusterState) -> Placement | None:
        el = eligibility(ix, projected, job, spare_mask(ix, cfg.spares_per_su) if cfg.spares_per_su else None)
        if keep_off is not None:
            el.now = el.now & ~keep_off
        if (fewest(leaf_counts(ix, el.now), el.nodes_needed) or bound + 1) > bound:
            return None
        p = place_one(ix, projected, job, cfg, el=el)
        return p if p.status == "placed" and p.leaves <= bound else None

    p = test(state)
    if p is not None:
        return NOW, p
    order = sorted(releases, key=lambda r: r.at)
    for at, projected in walk(state, ((max(r.at, NOW), r.alloc) for r in order), float("inf")):
        p = test(projected)
        if p is not None:
            return at, p
    return None


def _loaded(seed: int) -> tuple[FabricIndex, ClusterState, Timeline, random.Random]:
    fabric, _ = build_fabric(random_spec(seed))
    ix, state, rng = index_for(fabric), ClusterState(fabric), random.Random(seed)
    releases = []
    for node in range(fabric.n_nodes):
        free = state.free_gpu_ids(node)
        while free and rng.random() < 0.7:  # whole nodes and shared ones, several jobs on a node
            take = rng.sample(free, rng.randint(1, len(free)))
            state.allocate(node, take)
            releases.append(Release(NOW + rng.choice([0, 50, 100, 100, 300, 900]), [(node, take)]))
            free = state.free_gpu_ids(node)
    return ix, state, in_time_order(releases), rng


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 400), nodes=st.integers(2, 12), keep=st.booleans(), spares=st.integers(0, 1))
def test_the_kept_count_gives_the_answer_of_testing_every_end_from_scratch(seed: int, nodes: int, keep: bool,
                                                                           spares: int) -> None:
    ix, state, releases, rng = _loaded(seed)
    job = JobRequest("j", 8 * nodes)
    cfg = PlannerConfig(spares_per_su=spares)
    bound, multi = static_leaf_bound(ix, state, job, cfg)
    if bound is None or not multi:
        return
    keep_off = np.array([rng.random() < 0.2 for _ in range(ix.fabric.n_nodes)]) if keep else None
    got = first_within_bound(ix, state, job, cfg, releases, NOW, float("inf"), bound, keep_off)
    want = _reference(ix, state, job, cfg, releases, bound, keep_off)
    assert (got is None) == (want is None)
    if got is not None and want is not None:
        assert got[0] == want[0] and got[1].nodes == want[1].nodes
        hot = spare_mask(ix, spares)
        assert not any(hot[ix.fabric.node_index[n]] for n in got[1].nodes)  # hot spares: never
    # placer apply's shortcut: each node's whole-free time (or any lower bound) skips ends, never an answer
    free_at = node_free_times(ix, state, [Running(str(k), r.at, r.alloc) for k, r in enumerate(releases)], NOW)
    for lower in (free_at, free_at - np.array([rng.uniform(0, 600) for _ in range(free_at.size)])):
        for until in (float("inf"), NOW + rng.choice([0, 100, 300, 900])):
            fast = first_within_bound(ix, state, job, cfg, releases, NOW, until, bound, keep_off, lower)
            slow = first_within_bound(ix, state, job, cfg, releases, NOW, until, bound, keep_off)
            assert (fast is None) == (slow is None)
            if fast is not None and slow is not None:
                assert fast[0] == slow[0] and fast[1].nodes == slow[1].nodes
                for k in ("free_mask", "free_gpus", "group_free_nodes", "group_free_gpus"):  # skipped in bulk
                    assert getattr(fast[2], k).tolist() == getattr(slow[2], k).tolist(), k
        room = first_room(ix, state, job, cfg, releases, NOW, keep_off, lower)
        assert room == first_room(ix, state, job, cfg, releases, NOW, keep_off)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 400), skip=st.sampled_from([-10, 0, 50, 100, 300, 900, 10**6]))
def test_a_walk_that_starts_ahead_yields_the_same_states(seed: int, skip: int) -> None:
    """A look ahead releases the ends before its first possible time at once (`Timeline.ahead_of`, numpy)
    and walks on from there: every state it yields, and the nodes it says it released, are those of the
    walk over every end from now; a GPU released twice is refused."""
    ix, state, releases, _ = _loaded(seed)
    keys = ("free_mask", "free_gpus", "group_free_nodes", "group_free_gpus", "group_usable_nodes")

    def run(start: ClusterState, rest: Iterable[Release], touched: list[int]
            ) -> list[tuple[float, list[list[int]], set[int]]]:
        ends = ((max(r.at, NOW), r.alloc) for r in rest)
        return [(at, [getattr(s, k).tolist() for k in keys], set(touched))
                for at, s in walk(start, ends, float("inf"), touched) if at >= NOW + skip]

    touched: list[int] = []
    ahead, k = releases.ahead_of(state, NOW, NOW + skip, touched)
    assert k == sum(1 for r in releases if max(r.at, NOW) < NOW + skip)
    assert run(ahead, releases.releases[k:], touched) == run(state, releases, [])
    if k:
        with pytest.raises(RequestError, match="not all allocated"):
            releases.ahead_of(ahead, NOW, NOW + skip, [])  # those GPUs are free already


def test_a_matching_or_job_is_bounded_and_reserved_on_one_alternative() -> None:
    """test_constraints' fabric: l1 n1 a, n2 a, n3 b, n4 b; l2 n5 a, n6 b, n7 b, n8 c. Four nodes all
    a or all b: only the b nodes, over both leaves (any mix of a and b would fit in l1). n3 frees at +100."""
    ix, state, cfg = index_for(OR_FABRIC), ClusterState(OR_FABRIC), PlannerConfig()
    job = JobRequest("j", 32, gpus_per_node=8, constraint="[a|b]")
    assert static_leaf_bound(ix, state, job, cfg) == (2, True)
    n3 = OR_FABRIC.node_index["n3"]
    state.allocate(n3, list(range(8)))
    got = first_within_bound(ix, state, job, cfg, in_time_order([Release(NOW + 100, [(n3, list(range(8)))])]), NOW,
                             float("inf"), 2)
    assert got is not None and got[0] == NOW + 100 and sorted(got[1].nodes) == ["n3", "n4", "n6", "n7"]


@given(counts=st.lists(st.integers(0, 40), max_size=30), need=st.integers(0, 200), k=st.integers(0, 35))
def test_fits_in_is_the_fewest_bins_test(counts: list[int], need: int, k: int) -> None:
    c = np.asarray(counts, dtype=np.int64)
    few = fewest(c, need)
    assert fits_in(c, need, k) == (few is not None and few <= k)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 400), nodes=st.integers(2, 40), keep=st.booleans())
def test_first_room_is_the_first_end_with_enough_eligible_whole_free_nodes(seed: int, nodes: int, keep: bool) -> None:
    ix, state, releases, rng = _loaded(seed)
    job = JobRequest("j", 8 * nodes)
    keep_off = np.array([rng.random() < 0.2 for _ in range(ix.fabric.n_nodes)]) if keep else None

    def room(projected: ClusterState) -> bool:
        el = eligibility(ix, projected, job)
        return int((el.now & ~keep_off if keep_off is not None else el.now).sum()) >= el.nodes_needed

    want = NOW if room(state) else next(
        (at for at, p in walk(state, ((max(r.at, NOW), r.alloc) for r in sorted(releases, key=lambda r: r.at)),
                              float("inf")) if room(p)), None)
    assert first_room(ix, state, job, PlannerConfig(), releases, NOW, keep_off) == want


def test_the_hold_counts_from_room_only_for_a_job_with_none_now() -> None:
    assert hold_deadline(100.0, 50.0, None, 120.0) == 150.0  # room never comes: from submission
    assert hold_deadline(100.0, 50.0, 120.0, 120.0) == 150.0  # room now: from submission
    assert hold_deadline(100.0, 50.0, 500.0, 120.0) == 550.0  # room later: from room


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_the_first_possible_time_is_the_first_end_at_which_the_leaf_test_passes(data: st.DataObject) -> None:
    """`_LeafGate.first_possible` (a binary search over the nodes in free-time order, sorted once per pass)
    against trying every distinct free time from the earliest: the nodes free by then, counted per leaf."""
    from placer.timeline import _LeafGate

    n = data.draw(st.integers(1, 40))
    leaves = data.draw(st.integers(1, 6))
    gate = object.__new__(_LeafGate)
    gate.leaf_of = np.array(data.draw(st.lists(st.integers(0, leaves - 1), min_size=n, max_size=n)))
    gate.ready = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    gate.counts = np.zeros(leaves, dtype=np.int64)
    gate.need, gate.bound = data.draw(st.integers(1, 10)), data.draw(st.integers(1, 3))
    free_at = np.array(data.draw(st.lists(st.sampled_from([0.0, 1.0, 2.5, 7.0, float("inf")]), min_size=n,
                                          max_size=n)))
    want = next((t for t in sorted(set(free_at[gate.ready & np.isfinite(free_at)].tolist()))
                 if fits_in(leaf_counts_of(gate.leaf_of[gate.ready & (free_at <= t)], leaves), gate.need,
                            gate.bound)), float("inf"))
    releases = in_time_order([])
    assert gate.first_possible(free_at, releases.by_free_time(free_at)) == want
    assert releases.by_free_time(free_at) is releases.by_free_time(free_at)  # sorted once
    other = free_at[::-1].copy()
    assert releases.by_free_time(other).tolist() == np.argsort(other, kind="stable").tolist()


def leaf_counts_of(leaf: np.ndarray, leaves: int) -> np.ndarray:
    return np.bincount(leaf, minlength=leaves)
