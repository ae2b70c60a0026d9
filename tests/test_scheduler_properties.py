"""Properties of placer's scheduler (issue 18), on random small streams, checked from the replay's records
alone (an independent picture: who ran where and when), not from the scheduler's own bookkeeping.

Fabric: three leaves of three 8-GPU nodes. For a job J in arrival order, h(J) is when it became the
queue head (every job ahead of it had started); shadow(J) is the first time at or after h(J) when the
jobs running at h(J) have freed enough for it (whole nodes, or one node with its GPUs free). EASY
promises the head that later jobs never push its start past shadow(J); placer's hold may add at most
its hold limit for locality (placer.timeline.hold_limit: the hold, or a share of a long job's run time), counted from when the job could first have started (as Slurm counts
--switches from the first evaluation). So every job that started as the head started by shadow + hold
(a multi-node job) or by shadow (one that takes a node or less: it never waits for locality).
"""
from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from placer.jobs import JobRequest
from placer.sim import JobRecord, SimConfig, simulate
from placer.timeline import DEFAULT_HOLD_MAX_S, DEFAULT_HOLD_SHARE, hold_limit
from topology import load_inventory_text

from .conftest import dedent

FABRIC, _ = load_inventory_text(dedent("""
    version: 1
    node_types: {g8: {gpus: 8}}
    defaults: {type: g8}
    switches:
      - {name: top}
      - {name: l1, parent: top, nodes: "n[1-3]"}
      - {name: l2, parent: top, nodes: "n[4-6]"}
      - {name: l3, parent: top, nodes: "n[7-9]"}
    """))

jobs_st = st.lists(st.tuples(st.sampled_from([1, 2, 4, 8, 16, 24, 32, 48]), st.integers(0, 40), st.integers(1, 30)),
                   min_size=1, max_size=25)


def _shadow(rec: JobRecord, h: float, records: list[JobRecord]) -> float:
    """From the records: when the jobs running at h have freed enough room for `rec`."""
    free = {n: 8 for n in range(FABRIC.n_nodes)}
    running = [r for r in records if r.start is not None and r.end is not None and r.start <= h < r.end]
    for r in running:
        for n, ids in r.alloc:
            free[n] -= len(ids)
    for t in [h] + sorted({r.end for r in running if r.end is not None}):
        if t > h:
            for r in running:
                if r.end == t:
                    for n, ids in r.alloc:
                        free[n] += len(ids)
        if (rec.multi and sum(v == 8 for v in free.values()) >= rec.nodes_needed) or \
                (not rec.multi and any(v >= rec.job.gpus for v in free.values())):
            return t
    return float("inf")


@settings(max_examples=300, deadline=None)
@given(jobs_st, st.sampled_from([0.0, 5.0, 20.0]), st.booleans(), st.sampled_from([0, 2]))
# a 3-node job that could start at 2 over two leaves; its leaf frees at 7 (shadow 2 + hold 5): a hold
# counted any longer would let it wait past 7 (a wrong hold of 3 x 5 s was caught by this case)
@example([(1, 0, 7), (16, 0, 1), (24, 1, 1), (32, 0, 7)], 5.0, False, 0)
@example([(16, 3, 38), (32, 3, 39), (8, 4, 33), (48, 0, 22)], 20.0, True, 2)  # a move (next test)
def test_no_head_is_pushed_back_beyond_easy_and_its_hold(spec: list[tuple[int, int, int]], hold: float,
                                                         from_room: bool, moves: int) -> None:
    jobs = [JobRequest(f"j{i}", g, submit_time=float(s), duration=float(d)) for i, (g, s, d) in enumerate(spec)]
    records, _ = simulate(FABRIC, jobs, "placer", SimConfig(hold_s=hold, hold_from_room=from_room,
                                                            reservation_moves=moves))
    order = sorted(range(len(jobs)), key=lambda i: (jobs[i].submit_time or 0.0, -jobs[i].priority, i))
    ahead_started = 0.0
    for i in order:
        rec = records[i]
        if rec.status == "unplaceable":
            continue
        assert rec.start is not None, f"{rec.job.job_id} never started"
        h = max(rec.job.submit_time or 0.0, ahead_started)
        ahead_started = max(ahead_started, rec.start)
        if rec.start < h:
            continue  # started by backfill before it was the head
        shadow = _shadow(rec, h, records)
        limit = shadow + (hold_limit(rec.job.duration, hold, DEFAULT_HOLD_SHARE, DEFAULT_HOLD_MAX_S) if rec.multi else 0.0)
        assert rec.start <= limit, (rec.job.job_id, rec.start, h, limit)
        if hold == 0:
            assert rec.start <= shadow  # plain EASY


def test_with_hold_from_room_the_hold_counts_from_when_the_job_could_start() -> None:
    """A 6-node job (bound 2 leaves) arrives at 15 with 2 nodes free; it is the head from 20, when its
    hold (20 s) starts by default. Room for it comes at 44, over 3 leaves; 2 whole leaves at 55. By
    default its hold ran out at 40, so it starts at 44 on 3 leaves; counted from room (44) it waits to
    55 and starts within its bound."""
    spec = [(8, 3, 53), (48, 15, 29), (16, 7, 48), (24, 20, 29), (32, 3, 41)]
    jobs = [JobRequest(f"j{i}", g, submit_time=float(s), duration=float(d)) for i, (g, s, d) in enumerate(spec)]
    for from_room, start, leaves in ((False, 44.0, 3), (True, 55.0, 2)):
        records, _ = simulate(FABRIC, jobs, "placer", SimConfig(hold_s=20.0, hold_share=0.0, hold_from_room=from_room))
        assert (records[1].start, records[1].leaves, records[1].leaf_bound) == (start, leaves, 2)


def test_a_one_node_job_moves_the_heads_reserved_block_when_the_head_keeps_its_start() -> None:
    """j3 holds n1-n6 (leaves l1, l2) until 22. At 3, j0 takes n7-n8 and the head j1 (4 nodes, bound 2
    leaves) has one node free (n9): it reserves n1-n3 and n9 for 22. j2 (one node, 4 to 37) fits only on
    n9: without moves it waits for the head; with them it starts at 4 on n9 and the head's block moves to
    n1-n4, still 2 leaves, still at 22. A move that ends past the shadow plus the hold is not made."""
    spec = [(16, 3, 38), (32, 3, 39), (8, 4, 33), (48, 0, 22)]
    jobs = [JobRequest(f"j{i}", g, submit_time=float(s), duration=float(d)) for i, (g, s, d) in enumerate(spec)]
    for moves, hold, small_start, head_nodes in ((0, 14400.0, 22.0, [0, 1, 2, 8]), (2, 14400.0, 4.0, [0, 1, 2, 3]),
                                                 (2, 14.0, 22.0, [0, 1, 2, 8])):
        records, _ = simulate(FABRIC, jobs, "placer", SimConfig(reservation_moves=moves, hold_s=hold))
        head, small = records[1], records[2]
        assert (head.start, head.leaves, sorted(n for n, _ in head.alloc)) == (22.0, 2, head_nodes), moves
        assert small.start == small_start, (moves, hold)


def test_a_hold_that_would_leave_room_idle_with_nothing_queued_is_not_taken() -> None:
    """Three 2-node jobs fill two nodes of each leaf at 0 (l3's until 3000, the others until 5000). The
    head h (2 nodes, bound 1 leaf, 10,000 s) arrives at 1 with one node free in each leaf: the timeline
    says a leaf frees at 3000, within its hold. Holding leaves 24 GPUs idle for 2999 s; with nothing else
    queued (hold_idle_s 1800) it starts at once on two leaves. With every hold taken (hold_idle_s inf), with
    another 2-node job queued behind it (the free GPUs less what that asks cannot hold h), or when h runs
    100,000 s (its 2999 s wait is under hold_idle_share 0.05 of that), it waits for l3."""
    spec = [(16, 0, 5000), (16, 0, 5000), (16, 0, 3000)]
    behind = [(16, 1, 100)]
    for h_run, extra, idle_s, start, leaves in ((10_000, [], 1800.0, 1.0, 2), (10_000, [], float("inf"), 3000.0, 1),
                                                (10_000, behind, 1800.0, 3000.0, 1), (100_000, [], 1800.0, 3000.0, 1)):
        jobs = [JobRequest(f"j{i}", g, submit_time=float(s), duration=float(d))
                for i, (g, s, d) in enumerate(spec + [(16, 1, h_run)] + extra)]
        records, _ = simulate(FABRIC, jobs, "placer", SimConfig(hold_idle_s=idle_s, hold_idle_share=0.05))
        assert [r.start for r in records[:3]] == [0.0, 0.0, 0.0] and {r.leaves for r in records[:3]} == {1}
        assert (records[3].start, records[3].leaves, records[3].leaf_bound) == (start, leaves, 1), (h_run, extra, idle_s)
