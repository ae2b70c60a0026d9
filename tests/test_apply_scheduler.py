"""Placer's scheduler live (`placer apply`): a held multi-node job that would go beyond its leaf bound now
is pinned to the block within the bound that frees soonest (Slurm's EndTimes), within its hold.

Fabric (tiny preset, rails off): four leaves of four 8-GPU nodes, gpu[001-004] ... gpu[013-016].
Running: r1 on gpu001 until now+100; r2 on gpu[005-006], r3 on gpu[009-011], r4 on gpu[013-014] until
now+5000. Free now: three nodes of leaf 1, two of leaf 2, one of leaf 3, two of leaf 4. A 4-node job fits
now only over two leaves; leaf 1 is whole at now+100.
"""
from __future__ import annotations

from dataclasses import replace

from placer import PlannerConfig
from placer.timeline import HoldRule
from plugins.apply import ApplyReport, apply_once
from plugins.backend import HoldClock, SlurmJob, SlurmNode, SlurmReservation
from topology.hostlists import expand

from .test_serve_unit import FABRIC, RecordingSlurm

NOW = 10_000.0


def running(jid: int, nodes: list[str], end: float) -> SlurmJob:
    return SlurmJob(job_id=jid, name=f"r{jid}", state="RUNNING", node_count=len(nodes), nodes=tuple(nodes),
                    gpu_ids={n: tuple(range(8)) for n in nodes}, gpus_per_node=8, end_time=int(end))


def held(jid: int, gpus: int, submitted: float = NOW - 10) -> SlurmJob:
    return SlurmJob(job_id=jid, name=f"h{jid}", state="PENDING", priority=0, reason="JobHeldUser",
                    admin_comment="placer:steer", node_count=max(gpus // 8, 1), gpus_per_job=gpus,
                    submit_time=int(submitted))


def cluster(r1_end: float = NOW + 100) -> tuple[RecordingSlurm, dict[int, str]]:
    slurm = RecordingSlurm()
    pins: dict[int, str] = {}

    def pin(job_id: int, nodes: str, num_nodes: int) -> None:
        pins[job_id] = nodes
        slurm.calls.append(("pin", job_id))

    slurm.pin = pin  # type: ignore[method-assign]
    slurm.jobs = [running(1, ["gpu001"], r1_end), running(2, ["gpu005", "gpu006"], NOW + 5000),
                  running(3, ["gpu009", "gpu010", "gpu011"], NOW + 5000),
                  running(4, ["gpu013", "gpu014"], NOW + 5000)]
    return slurm, pins


def reserved_on_leaf_1() -> tuple[RecordingSlurm, dict[int, str]]:
    """A 32-GPU job 7 reserved on leaf 1 by a first pass, then pending there as Slurm keeps it."""
    slurm, pins = cluster()
    slurm.jobs.append(held(7, 32))
    apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=NOW, hold=HoldRule(1800))
    slurm.jobs[-1] = replace(slurm.jobs[-1], priority=1, reason="Resources",
                             required_nodes=("gpu001", "gpu002", "gpu003", "gpu004"))
    return slurm, pins


def test_a_job_beyond_its_bound_now_is_pinned_to_the_leaf_that_frees_in_time() -> None:
    slurm, pins = cluster()
    slurm.jobs.append(held(7, 32))
    out = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=NOW, hold=HoldRule(1800))
    assert pins == {7: "gpu[001-004]"} and slurm.calls == [("pin", 7), ("release", 7)]
    assert out.reserved == [(7, "gpu[001-004]", NOW + 100)] and not out.pinned and not out.errors


def test_hot_spares_stay_out_of_the_bound_and_the_reserved_block() -> None:
    """With one hot spare per leaf (spares_per_su: 1; the last node of each: gpu004, gpu008, ...) a leaf
    holds three nodes for the job: its bound is two leaves, and the block that frees first within it is
    leaf 1's three at now+100 with gpu007, not leaf 1 whole (spare included). The one validator knows the
    spares too: a placement on one is never applied."""
    slurm, pins = cluster()
    slurm.jobs.append(held(7, 32))
    out = apply_once(FABRIC, slurm, PlannerConfig(spares_per_su=1), max_hold_s=600, now=NOW, hold=HoldRule(1800))
    assert pins == {7: "gpu[001-003,007]"} and out.reserved == [(7, "gpu[001-003,007]", NOW + 100)]
    assert not out.errors


def test_a_later_job_in_the_same_pass_keeps_off_the_reserved_block() -> None:
    """The 8-GPU job would best fill a node of the broken leaf 1, but leaf 1 is the 4-node job's now."""
    slurm, pins = cluster()
    slurm.jobs += [held(7, 32), held(8, 8)]
    out = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=NOW, hold=HoldRule(1800))
    assert pins[7] == "gpu[001-004]" and pins[8] not in ("gpu002", "gpu003", "gpu004")
    assert [j for j, _ in out.pinned] == [8]


def test_past_its_hold_or_without_end_times_it_takes_what_there_is_now() -> None:
    for slurm, pins, hold_s in (cluster() + (50.0,), cluster(r1_end=0) + (1800.0,), cluster(NOW + 3600) + (1800.0,)):
        slurm.jobs.append(held(7, 32))
        out = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=NOW, hold=HoldRule(hold_s))
        assert not out.reserved and [j for j, _ in out.pinned] == [7], hold_s
        leaves = {int(FABRIC.node_leaf[FABRIC.node_index[n]]) for n in expand(pins[7])}
        assert len(leaves) == 2, (hold_s, pins[7])  # beyond the bound: all there is now


def test_a_job_within_its_bound_now_is_pinned_now_and_hold_zero_never_reserves() -> None:
    slurm, pins = cluster()
    slurm.jobs.append(held(7, 24))  # three nodes: leaf 1's free three
    out = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=NOW, hold=HoldRule(1800))
    assert pins == {7: "gpu[002-004]"} and not out.reserved
    slurm, pins = cluster()
    slurm.jobs.append(held(7, 32))
    out = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=NOW, hold=HoldRule(0))
    assert not out.reserved and pins[7] != "gpu[001-004]"


def test_a_reserved_job_is_spoken_for_in_the_next_pass() -> None:
    """Pinned and released, the job is pending with required nodes: the next pass neither re-plans it
    nor gives its block to another held job."""
    slurm, pins = reserved_on_leaf_1()
    slurm.jobs.append(held(9, 8))
    apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=NOW + 1, hold=HoldRule(1800))
    assert pins[9] not in ("gpu001", "gpu002", "gpu003", "gpu004") and 7 in pins


def test_a_reserved_job_whose_block_drains_is_planned_again() -> None:
    """Pinned to leaf 1 and pending there; then gpu003 is drained: Slurm would keep the job pending for
    good, so the next pass moves it (pinned again, not released: it is not held) off the drained node."""
    from plugins.backend import SlurmNode

    slurm, pins = reserved_on_leaf_1()
    slurm.calls.clear()
    out = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=NOW + 1, hold=HoldRule(1800))
    assert slurm.calls == [] and not out.errors  # nothing to repair: left alone
    slurm.nodes[2] = SlurmNode("gpu003", "drain", partitions=("gpu",))
    out = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=NOW + 2, hold=HoldRule(1800))
    assert slurm.calls == [("pin", 7)] and "gpu003" not in expand(pins[7]) and len(expand(pins[7])) == 4
    assert [j for j, _ in out.pinned] == [7] and not out.errors


def test_a_reservation_moves_to_a_block_within_its_bound_that_frees_first() -> None:
    """Reserved on leaf 1 (r1's EndTime now+100), then r4 ends early and leaf 4 is whole: the next pass
    pins the pending job to leaf 4 (not released again: it is not held). Once its own block is free it
    stays, even with another whole leaf free; and a block free now only beyond its bound never moves it."""
    slurm, pins = reserved_on_leaf_1()
    slurm.calls.clear()
    out = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=NOW + 1, hold=HoldRule(1800))
    assert slurm.calls == [] and not out.moved  # six nodes free now, over three leaves: it keeps leaf 1
    slurm.jobs = [j for j in slurm.jobs if j.job_id != 4]
    out = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=NOW + 2, hold=HoldRule(1800))
    assert slurm.calls == [("pin", 7)] and pins[7] == "gpu[013-016]"
    assert out.moved == [(7, "gpu[001-004]", pins[7], NOW + 2)] and not out.pinned and not out.errors
    slurm.jobs = [j for j in slurm.jobs if j.job_id != 1]  # its own block frees: nothing busy on it
    slurm.calls.clear()
    assert not apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=NOW + 3, hold=HoldRule(1800)).moved
    assert slurm.calls == []


def test_a_reservation_whose_jobs_time_limit_grows_moves_to_a_block_that_frees_sooner() -> None:
    """r1's time limit is raised (EndTime now+100 -> now+6000): leaf 1 now frees after the others
    (now+5000), so the pending job is pinned to a block freeing then, and starts there when it frees.
    Raised only to now+5030, leaf 1 is not later by the margin (60 s): the job stays."""
    for r1_end, moves in ((NOW + 5030, False), (NOW + 6000, True)):
        slurm, pins = reserved_on_leaf_1()
        slurm.jobs[0] = replace(slurm.jobs[0], end_time=int(r1_end))
        slurm.calls.clear()
        out = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=NOW + 1, hold=HoldRule(1800))
        if not moves:
            assert slurm.calls == [] and not out.moved
            continue
        assert slurm.calls == [("pin", 7)] and out.moved == [(7, "gpu[001-004]", pins[7], NOW + 5000)]
        assert len(expand(pins[7])) == 4 and not set(expand(pins[7])) & {"gpu001", "gpu002", "gpu003", "gpu004"}
        assert len({int(FABRIC.node_leaf[FABRIC.node_index[n]]) for n in expand(pins[7])}) == 1


def test_a_long_time_limit_buys_a_longer_hold() -> None:
    """A 50 s hold is too short for leaf 1 (free at now+100), but a job with a 7-day time limit may wait
    a fifth of it (hold_share 0.2); with hold_share 0 it may not."""
    slurm, pins = cluster()
    slurm.jobs.append(replace(held(7, 32), time_limit_s=7 * 86400.0))
    out = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=NOW, hold=HoldRule(50, share=0.2))
    assert out.reserved == [(7, "gpu[001-004]", NOW + 100)]
    slurm, pins = cluster()
    slurm.jobs.append(replace(held(7, 32), time_limit_s=7 * 86400.0))
    out = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=NOW, hold=HoldRule(50, share=0.0))
    assert not out.reserved and pins[7] != "gpu[001-004]"


def test_small_jobs_by_end_take_the_node_they_delay_least_only_when_asked() -> None:
    """gpu001: 6 GPUs busy for 10 h; gpu005: 7 GPUs busy for 1 h. A 1-GPU job of 2 h: by free GPUs it fills
    gpu005 (holding it an hour longer); with small_jobs_by_end it goes to gpu001, which it does not delay."""
    def run(by_end: bool, *jobs: SlurmJob) -> dict[int, str]:
        slurm, pins = cluster()
        slurm.jobs = [
            SlurmJob(job_id=1, name="a", state="RUNNING", node_count=1, nodes=("gpu001",),
                     gpu_ids={"gpu001": tuple(range(6))}, gpus_per_node=6, end_time=int(NOW + 36000)),
            SlurmJob(job_id=2, name="b", state="RUNNING", node_count=1, nodes=("gpu005",),
                     gpu_ids={"gpu005": tuple(range(7))}, gpus_per_node=7, end_time=int(NOW + 3600)), *jobs]
        out = apply_once(FABRIC, slurm, PlannerConfig(solver="greedy", small_jobs_by_end=by_end), max_hold_s=600,
                         now=NOW, hold=HoldRule(1800))
        assert not out.errors
        return pins

    two_hours = replace(held(7, 1), time_limit_s=7200.0)
    assert run(False, two_hours) == {7: "gpu005"}
    assert run(True, two_hours) == {7: "gpu001"}
    # a job pinned earlier in the pass holds its node until its time limit: a 4-GPU job of 20 h breaks a whole
    # node; a 1-GPU job of 15 h then goes beside it (no delay) rather than to gpu001 (3 h later than now)
    pins = run(True, replace(held(7, 4), time_limit_s=72000.0), replace(held(8, 1), time_limit_s=54000.0))
    assert pins[8] == pins[7] and pins[7] not in ("gpu001", "gpu005")


def test_a_job_with_no_room_now_counts_its_hold_from_when_room_comes() -> None:
    """With hold_from_room: an 8-node job (bound 2 leaves) has 7 free nodes now; room comes at now+2000 (leaf
    4 whole: 2+2+2+4 free, only over 3 leaves) and its bound at now+2500 (leaves 1 and 2 whole). Its
    1,800 s hold from submission ends before room comes; counted from room (the default), it reserves the
    2-leaf block at now+2500. Counted from submission, and with a hold too short even from room, it waits held."""
    def run(hold: HoldRule) -> tuple[ApplyReport, dict[int, str]]:
        slurm, pins = cluster()
        slurm.jobs = [running(1, ["gpu001", "gpu002"], NOW + 2500), running(2, ["gpu005", "gpu006"], NOW + 2500),
                      running(3, ["gpu009", "gpu010"], NOW + 5000),
                      running(4, ["gpu013", "gpu014", "gpu015"], NOW + 2000), held(7, 64)]
        return apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=NOW, hold=hold), pins

    out, pins = run(HoldRule(1800, from_room=True))
    assert [(j, at) for j, _, at in out.reserved] == [(7, NOW + 2500)] and not out.waiting
    assert len({int(FABRIC.node_leaf[FABRIC.node_index[n]]) for n in expand(pins[7])}) == 2
    assert HoldRule(1800) == HoldRule(1800, from_room=True)  # the default
    for hold in (HoldRule(1800, from_room=False), HoldRule(300, from_room=True)):
        out, pins = run(hold)
        assert not out.reserved and [j for j, _ in out.waiting] == [7] and not pins


def test_a_matching_or_job_is_reserved_on_one_alternative() -> None:
    """test_constraints' fabric (l1: n1 a, n2 a, n3 b, n4 b; l2: n5 a, n6 b, n7 b, n8 c), n3 busy until
    now+100. Four nodes of `-C "[a|b]"`: all four b nodes, over both leaves, once n3 frees; any mix of a
    and b in leaf 1 would break the constraint (the validator refuses it: the job would stay held)."""
    from plugins.backend import SlurmNode

    from .test_constraints import FABRIC as OR_FABRIC

    slurm, pins = cluster()
    slurm.nodes = [SlurmNode(n, "up", partitions=("gpu",)) for n in OR_FABRIC.node_names]
    slurm.jobs = [running(1, ["n3"], NOW + 100), replace(held(7, 32), features="[a|b]")]
    out = apply_once(OR_FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=NOW, hold=HoldRule(1800))
    assert pins == {7: "n[3-4,6-7]"} and out.reserved == [(7, "n[3-4,6-7]", NOW + 100)] and not out.errors


def test_a_hold_that_would_leave_room_idle_with_nothing_pending_is_not_taken() -> None:
    """Leaf 1 frees at now+3600 (hold 7,200 s): holding job 7 (32 GPUs) that long leaves 64 free GPUs idle.
    With nothing else pending it is pinned now over two leaves (hold_idle_s 1,800 s, the default); with
    every hold taken, or a pending job of 40 GPUs (not placer's: Slurm schedules it) that the free GPUs
    less job 7's cannot hold, it is reserved on leaf 1. A pending job a user holds asks for nothing now, nor
    one waiting for another job, a begin time or an accounting limit; one Slurm gives a reason placer does
    not know counts (the hold stands)."""
    user_held = SlurmJob(job_id=9, name="u", state="PENDING", priority=0, reason="JobHeldUser", node_count=5,
                         gpus_per_job=40, submit_time=int(NOW))
    waiting = replace(user_held, priority=1, reason="Resources")
    not_for_room = [replace(waiting, job_id=10 + i, reason=r) for i, r in enumerate(
        ("Dependency", "BeginTime", "AssocGrpGRES", "QOSMaxGRESPerUser", "MaxGRESPerAccount"))]
    for others, hold, reserved in (([], HoldRule(7200), False), ([user_held], HoldRule(7200), False),
                                   ([], HoldRule(7200, idle_s=float("inf")), True), ([waiting], HoldRule(7200), True),
                                   (not_for_room, HoldRule(7200), False),
                                   ([replace(waiting, reason="SomeFutureReason")], HoldRule(7200), True)):
        slurm, pins = cluster(r1_end=NOW + 3600)
        slurm.jobs += [held(7, 32), *others]
        out = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=NOW, hold=hold)
        leaves = {int(FABRIC.node_leaf[FABRIC.node_index[n]]) for n in expand(pins[7])}
        if reserved:
            assert out.reserved == [(7, "gpu[001-004]", NOW + 3600)] and not out.pinned, others
        else:
            assert not out.reserved and [j for j, _ in out.pinned] == [7] and len(leaves) == 2, others


def test_the_idle_rule_weighs_only_the_room_the_job_may_use() -> None:
    """As above (leaf 1 whole at now+3600, 64 GPUs free), with partitions `front` (leaves 1 and 2: 40 of the
    free GPUs) and `rear` (leaves 3 and 4), every node in `gpu`, and a 16-GPU job pending. Job 7 in `front`
    weighs front's 40 free GPUs and the pending jobs that could use one of its nodes: one in `rear` cannot
    (40 would still hold job 7's 32: pinned now), one in `front`, in `rear,front` or in a partition Slurm
    does not list can (24 cannot: reserved on leaf 1; over the whole cluster 64 - 16 would have started
    it). Job 7 in `gpu` weighs all 64 free GPUs and the `rear` job too (48: pinned now)."""
    front = {f"gpu{i:03d}" for i in range(1, 9)}
    for mine, theirs, reserved in (("front", "rear", False), ("front", "front", True), ("front", "rear,front", True),
                                   ("front", "nope", True), ("gpu", "rear", False)):
        slurm, pins = cluster(r1_end=NOW + 3600)
        slurm.nodes = [SlurmNode(n, "up", partitions=("gpu", "front" if n in front else "rear"))
                       for n in FABRIC.node_names]
        other = SlurmJob(job_id=9, name="o", state="PENDING", priority=1, reason="Resources", node_count=2,
                         gpus_per_job=16, submit_time=int(NOW), partition=theirs)
        slurm.jobs += [replace(held(7, 32), partition=mine), other]
        out = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=NOW, hold=HoldRule(7200))
        if reserved:
            assert out.reserved == [(7, "gpu[001-004]", NOW + 3600)] and not out.pinned, (mine, theirs, out)
        else:
            assert not out.reserved and [j for j, _ in out.pinned] == [7], (mine, theirs, out)


def test_a_job_pinned_now_in_the_pass_asks_for_nothing_more() -> None:
    """Job 6 (24 GPUs, submitted first) is pinned now on leaf 1's three free nodes. Job 7 (32 GPUs) then
    fits now over leaves 2 and 4 (40 GPUs free); its bound frees at now+5000 (leaf 2). Job 6 started, so
    nothing else asks: the 5,000 s hold would idle the room and job 7 starts now too. Were job 6 still
    counted, 40 - 24 could not hold job 7 and it would be reserved."""
    slurm, pins = cluster(r1_end=NOW + 3600)
    slurm.jobs += [held(6, 24, submitted=NOW - 20), held(7, 32)]
    out = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=NOW, hold=HoldRule(7200))
    assert [j for j, _ in out.pinned] == [6, 7] and not out.reserved, out
    assert pins[6] == "gpu[002-004]"


def test_a_held_job_slurm_could_not_start_yet_stays_held_unpinned() -> None:
    """Held by the hook, a job whose dependency is not met (5) or whose begin time is to come (6) is neither
    pinned (its nodes would be kept idle for it until then) nor released: it stays held, saying why. One
    whose dependency can never be met (8) is released as is, Slurm's to keep or cancel. The max-hold clock
    runs from when Slurm found a job eligible: 9, submitted 2 h ago and eligible 10 s ago, is pinned; 10,
    eligible as long, is released unpinned past the 600 s."""
    slurm, pins = cluster()
    slurm.jobs += [replace(held(5, 8), dependency="afterok:1(unfulfilled)"),
                   replace(held(6, 8), eligible_time=int(NOW + 3600)),
                   replace(held(8, 8), dependency="afterok:1(failed)"),
                   replace(held(9, 8, submitted=NOW - 7200), eligible_time=int(NOW - 10)),
                   replace(held(10, 8, submitted=NOW - 7200), eligible_time=int(NOW - 7200))]
    out = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=NOW, hold=HoldRule(1800))
    why = dict(out.waiting)
    assert why[5] == "Slurm would not start it yet: it waits for its dependency afterok:1(unfulfilled)"
    assert why[6] == "Slurm would not start it yet: it waits for its begin time, in 3600 s"
    assert dict(out.released_unpinned) == {8: "its dependency can never be met: afterok:1(failed)",
                                          10: "held 7200 s > 600 s"}
    assert [j for j, _ in out.pinned] == [9] and set(pins) == {9}
    assert not {("pin", 5), ("release", 5), ("pin", 6), ("release", 6), ("pin", 8)} & set(slurm.calls)


def test_nodes_of_a_pinned_job_slurm_could_not_start_yet_are_not_kept_for_it() -> None:
    """Job 5, pending on gpu002-004 (say `-w` with a dependency not met), keeps those nodes from held job 7
    only while Slurm could start it there (Slurm keeps no room for a job waiting for its dependency)."""
    for dependency, kept in (("", True), ("afterok:1(unfulfilled)", False)):
        slurm, pins = cluster()
        slurm.jobs += [SlurmJob(job_id=5, name="w", state="PENDING", priority=1, reason="Dependency" if dependency
                                else "Resources", node_count=3, gpus_per_node=8, submit_time=int(NOW),
                                required_nodes=("gpu002", "gpu003", "gpu004"), dependency=dependency),
                       held(7, 24)]
        apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=NOW, hold=HoldRule(0))
        assert (pins[7] != "gpu[002-004]") == kept, (dependency, pins)


def test_a_held_job_waiting_for_its_dependency_asks_for_no_room() -> None:
    """As in the idle-rule test above: job 7's hold would idle 64 GPUs; a 40-GPU job held by the hook asks
    for them (the hold stands) unless it waits for its dependency (job 7 is pinned now)."""
    for dependency, reserved in (("", True), ("afterok:1(unfulfilled)", False)):
        slurm, pins = cluster(r1_end=NOW + 3600)
        slurm.jobs += [held(7, 32), replace(held(9, 40, submitted=NOW), dependency=dependency)]
        out = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=NOW, hold=HoldRule(7200))
        assert ((7, "gpu[001-004]", NOW + 3600) in out.reserved) == reserved, (dependency, out)
        assert (7 in dict(out.pinned)) != reserved and (9 in dict(out.waiting)) != reserved, (dependency, out)


def test_a_chained_jobs_hold_counts_from_when_its_dependency_was_seen_met() -> None:
    """Job 5, submitted 2 h ago, waits for its dependency (Slurm leaves eligible_time 0 while a job is held).
    Once it is met, a watch that saw it waiting counts the hold from then: pinned, not past the 600 s. A
    process that never saw it waiting counts from submission: released unpinned (Slurm places it)."""
    clock = HoldClock()
    slurm, pins = cluster()
    slurm.jobs.append(replace(held(5, 8, submitted=NOW - 7200), dependency="afterok:1(unfulfilled)"))
    out = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=NOW, hold=HoldRule(0), clock=clock)
    assert [j for j, _ in out.waiting] == [5] and not pins
    slurm.jobs[-1] = replace(slurm.jobs[-1], dependency="")
    later = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=NOW + 300, hold=HoldRule(0), clock=clock)
    fresh = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=NOW + 300, hold=HoldRule(0))
    assert [j for j, _ in later.pinned] == [5] and not later.released_unpinned
    assert fresh.released_unpinned == [(5, "held 7500 s > 600 s")]
    assert clock.eligible_at == {5: NOW + 300}
    slurm.jobs.pop()
    apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=NOW + 400, hold=HoldRule(0), clock=clock)
    assert not clock.waited and not clock.eligible_at  # a job no longer held is forgotten


def test_a_chained_job_gets_its_whole_locality_hold_once_its_dependency_is_met() -> None:
    """Job 7 (32 GPUs), submitted 2 h ago, its dependency met at this pass: within its 1,800 s hold counted
    from then it is reserved on leaf 1 (frees at now+100), as a job just submitted would be; counted from
    submission it would be past the hold and pinned now over several leaves."""
    clock = HoldClock()
    slurm, pins = cluster()
    slurm.jobs.append(replace(held(7, 32, submitted=NOW - 7200), dependency="afterok:9(unfulfilled)"))
    apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=86400, now=NOW - 50, hold=HoldRule(1800), clock=clock)
    slurm.jobs[-1] = replace(slurm.jobs[-1], dependency="")
    out = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=86400, now=NOW, hold=HoldRule(1800), clock=clock)
    assert out.reserved == [(7, "gpu[001-004]", NOW + 100)] and not out.pinned, out
    fresh = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=86400, now=NOW, hold=HoldRule(1800))
    assert [j for j, _ in fresh.pinned] == [7] and not fresh.reserved, fresh


def test_a_job_array_or_a_heterogeneous_job_held_by_the_hook_is_released_as_it_is() -> None:
    """A job array's pending record (5: tasks 0-3) and a heterogeneous job's components (8 and 9, leader 8),
    held by a hook from before placer left them to Slurm: pinning one node set for every task would run
    the tasks one at a time (and scontrol refuses, "Job resizing not supported for job arrays", for both
    kinds: seen on 22.05, 24.11 and 26.05), so each is released unpinned, saying why; job 7 is still placed."""
    slurm, pins = cluster()
    slurm.jobs += [replace(held(5, 8), array_job_id=5, array_tasks="0-3"), replace(held(8, 8), het_job_id=8),
                   replace(held(9, 16), het_job_id=8), held(7, 8)]
    out = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=NOW, hold=HoldRule(1800))
    why = dict(out.released_unpinned)
    assert set(why) == {5, 8, 9} and why[5].startswith("a job array is left to Slurm"), out
    assert why[9].startswith("a heterogeneous job is left to Slurm"), out
    assert set(pins) == {7} and not out.errors, out


def test_a_pending_job_arrays_tasks_each_count_in_the_idle_rule() -> None:
    """As the idle-rule test above (64 GPUs free, job 7's 32 held for leaf 1 at now+3600): one pending
    8-GPU job leaves room for job 7 (pinned now); an array of five such tasks (0-4, one record) asks 40,
    and so does 0-9%5 (at most five at once): 64 - 40 cannot hold job 7, reserved on leaf 1. 0-9%4 asks
    32 (pinned now)."""
    for tasks, reserved in (("", False), ("0-4", True), ("0-9%5", True), ("0-9%4", False)):
        slurm, pins = cluster(r1_end=NOW + 3600)
        other = SlurmJob(job_id=9, name="a", state="PENDING", priority=1, reason="Resources", node_count=1,
                         gpus_per_job=8, submit_time=int(NOW), array_job_id=9 if tasks else 0, array_tasks=tasks)
        slurm.jobs += [held(7, 32), other]
        out = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=NOW, hold=HoldRule(7200))
        assert bool(out.reserved) == reserved and bool(out.pinned) != reserved, (tasks, out)


def test_held_jobs_keep_off_slurms_reservations_and_a_job_in_one_is_released_as_it_is() -> None:
    """Job 5 (8 GPUs, one node) goes to leaf 3's one free node (gpu012); with a reservation on leaf 3 now,
    or from an hour on while its time limit is 2 hours, it goes elsewhere; with a 30-minute limit it may
    still go there. Job 6 runs in a reservation (`--reservation`): released unpinned, Slurm's to place."""
    leaf3 = ("gpu009", "gpu010", "gpu011", "gpu012")
    for resv, limit_s, on_leaf_3 in (((), 1800, True), ((SlurmReservation("m", leaf3, NOW - 60, NOW + 600),), 1800, False),
                                     ((SlurmReservation("m", leaf3, NOW + 3600, NOW + 7200),), 7200, False),
                                     ((SlurmReservation("m", leaf3, NOW + 3600, NOW + 7200),), 1800, True)):
        slurm, pins = cluster()
        slurm.reservations = list(resv)
        slurm.jobs += [replace(held(5, 8), time_limit_s=float(limit_s)), replace(held(6, 8), reservation="m")]
        out = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=NOW, hold=HoldRule(1800))
        assert (set(expand(pins[5])) <= set(leaf3)) == on_leaf_3, (resv, limit_s, pins)
        assert dict(out.released_unpinned) == {6: "a job in reservation m is left to Slurm"}, out


def test_a_block_reserved_for_later_keeps_off_a_slurm_reservation_the_job_would_run_into_from_then() -> None:
    """Job 7 (32 GPUs, 30-minute limit) would be reserved on leaf 1, whole at now+100. A Slurm reservation
    on leaf 1 from now+1,850 does not touch the job started now (it would end at now+1,800) but does from
    now+100 (until now+1,900): Slurm would keep it pending there until the reservation ends. So its block is
    the first within its bound that no reservation claims from when it frees (leaf 2, 3 or 4 at now+5,000).
    A reservation from now+2,000 leaves leaf 1 as it was. (The idle rule is off: it would start the job now.)"""
    leaf1 = ("gpu001", "gpu002", "gpu003", "gpu004")
    for start, on_leaf_1 in ((NOW + 1850, False), (NOW + 2000, True)):
        slurm, pins = cluster()
        slurm.reservations = [SlurmReservation("m", leaf1, start, NOW + 9000)]
        slurm.jobs.append(replace(held(7, 32), time_limit_s=1800.0))
        hold = HoldRule(7200, idle_s=float("inf"))
        out = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=NOW, hold=hold)
        assert not out.errors and not out.pinned, (start, out)
        at = NOW + 100 if on_leaf_1 else NOW + 5000
        assert out.reserved == [(7, pins[7], at)], (start, out)
        assert (set(expand(pins[7])) == set(leaf1)) == on_leaf_1, (start, pins)
        leaves = {int(FABRIC.node_leaf[FABRIC.node_index[n]]) for n in expand(pins[7])}
        assert len(leaves) == 1, pins


def test_a_waiting_reservation_moves_only_to_a_block_no_slurm_reservation_claims_from_when_it_frees() -> None:
    """Reserved on leaf 1 at r1's EndTime (now+100); r1's limit grows to now+6,000, so leaf 2, 3 or 4
    (now+5,000) would free sooner. With a Slurm reservation on leaves 2 and 4 from now+5,500 (the job's
    30-minute limit would run into it from now+5,000) only leaf 3 is a place to move to."""
    slurm, pins = reserved_on_leaf_1()
    slurm.jobs[0] = replace(slurm.jobs[0], end_time=int(NOW + 6000))
    slurm.jobs[-1] = replace(slurm.jobs[-1], time_limit_s=1800.0)
    slurm.reservations = [SlurmReservation("m", ("gpu005", "gpu006", "gpu007", "gpu008", "gpu013", "gpu014",
                                                 "gpu015", "gpu016"), NOW + 5500, NOW + 9000)]
    out = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=NOW + 1, hold=HoldRule(1800))
    assert not out.errors and [m[2] for m in out.moved] == ["gpu[009-012]"], out


def test_a_waiting_reservation_a_slurm_reservation_now_claims_is_planned_again() -> None:
    """Job 7 waits on leaf 1 (r1's EndTime now+100; 30-minute limit). A Slurm reservation made since on
    gpu002 from now+1,000 (as `placer reserve --apply` makes) would keep it pending until that ends: the
    next pass plans it again, off the reservation. One from now+2,000 leaves it where it is."""
    for start, moved in ((NOW + 1000, True), (NOW + 2000, False)):
        slurm, pins = reserved_on_leaf_1()
        slurm.jobs[-1] = replace(slurm.jobs[-1], time_limit_s=1800.0)
        slurm.reservations = [SlurmReservation("hero", ("gpu002",), start, NOW + 9000)]
        slurm.calls.clear()
        out = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=NOW + 1, hold=HoldRule(7200))
        assert not out.errors, out
        assert (slurm.calls == [("pin", 7)]) == moved and ("gpu002" in expand(pins[7])) != moved, (start, pins, out)


def test_why_names_the_later_block_no_slurm_reservation_claims_from_when_it_frees() -> None:
    """`placer why` (CLI, daemon, apply's log) looks ahead as apply pins: with the reservation on leaf 1 from
    now+1,850, job 7's block within its bound is not leaf 1 at now+100 but one freeing at now+5,000."""
    from placer import JobRequest
    from placer.index import index_for
    from placer.why import why
    from plugins.backend import running_of, to_cluster_state
    from plugins.requests import off_reservations_at

    slurm, _ = cluster()
    report = to_cluster_state(FABRIC, slurm.snapshot())
    job = JobRequest("7", 32, time_limit_s=1800.0)
    resv = [SlurmReservation("m", ("gpu001", "gpu002", "gpu003", "gpu004"), NOW + 1850, NOW + 9000)]
    for off_at, at in ((None, NOW + 100), (off_reservations_at(resv), NOW + 5000)):
        answer = why(index_for(FABRIC), report.state.copy(), job, PlannerConfig(),
                     running_of(FABRIC, report.running), NOW, off_at=off_at)
        assert answer["within_bound"]["at"] == at, answer["within_bound"]
