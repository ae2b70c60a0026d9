"""CPUs as well as GPUs (plugins/cpus.py): a job is never advised or pinned to a node Slurm shows MIXED with
fewer CPUs left than the job needs on each node, whatever GPUs it has free.

Fabric (tiny preset, rails off): gpu[001-016], 8 GPUs and (as the tests' Slurm says) 16 CPUs each. On
gpu001 a job holds 6 GPUs and 12 CPUs: 2 GPUs and 4 CPUs left. Placer's small-job rule prefers that node for
a job of 1 or 2 GPUs (the fewest GPUs left), so only the CPU rule keeps a job that needs 8 CPUs off it.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from placer import PlannerConfig
from placer.timeline import HoldRule
from plugins.apply import apply_once
from plugins.backend import SlurmJob, SlurmNode
from plugins.cpus import UNKNOWN, cpu_room, cpus_per_node_needed
from plugins.slurm_cli import parse_sinfo_json, parse_squeue_json
from topology.generate import design_for, generate

from .test_apply_scheduler import held
from .test_serve_unit import FABRIC, RecordingSlurm, req
from .test_serve_unit import daemon as make_daemon

# the real 24.11 and 26.05 documents' cluster: n[001-128]
N128 = generate(design_for("tiny", rails=0, node_prefix="n", pods=1, sus_per_pod=4, nodes_per_su=32))
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "slurm-json"


def test_what_a_job_needs_on_each_node() -> None:
    assert cpus_per_node_needed(1) == 1  # nothing asked: one CPU
    assert cpus_per_node_needed(1, min_cpus=12) == 12  # one node: all its CPUs there
    assert cpus_per_node_needed(2, min_cpus=12) == 1  # two: Slurm may split them unevenly
    assert cpus_per_node_needed(2, cpus_per_task=8) == 8  # a task is never split
    assert cpus_per_node_needed(2, cpus_per_task=2, tasks_per_node=4) == 8
    assert cpus_per_node_needed(2, pn_min_cpus=6) == 6  # --mincpus
    assert cpus_per_node_needed(1, cpus_per_gpu=4, gpus_per_node=2) == 8
    # Slurm's "not given" markers (NO_VAL16, NO_VAL) and nonsense count as not given
    assert cpus_per_node_needed(1, 4294967294, 65534, 65534, 65534, 65534, 8) == 1
    assert cpus_per_node_needed(1, -5, -1, 0, 0, 0, 0) == 1


def _mixed() -> list[SlurmNode]:
    return [SlurmNode(n, "up", partitions=("gpu",), cpus=16, busy=n == "gpu001") for n in FABRIC.node_names]


def _on_gpu001(end: float) -> SlurmJob:
    return SlurmJob(job_id=1, name="r1", state="RUNNING", node_count=1, nodes=("gpu001",),
                    gpu_ids={"gpu001": tuple(range(6))}, cpus_by_node={"gpu001": 12}, end_time=int(end))


def _names(mask: np.ndarray) -> set[str]:
    return {FABRIC.node_names[i] for i in np.flatnonzero(mask)}


def test_a_nodes_free_cpus_are_its_cpus_less_the_most_known_taken() -> None:
    a, b, c, d, e = FABRIC.node_names[:5]
    nodes = [SlurmNode(a, "up", cpus=16), SlurmNode(b, "up", cpus=16), SlurmNode(c, "up", cpus=16),
             SlurmNode(d, "up"), SlurmNode(e, "up", cpus=16), SlurmNode(a, "up", cpus=8),
             SlurmNode("elsewhere", "up", cpus=4)]
    jobs = [SlurmJob(1, "j", "RUNNING", nodes=(a, b, d, "elsewhere"),
                     cpus_by_node={a: 2, b: 10, d: 3, "elsewhere": 3}),
            SlurmJob(5, "m", "RUNNING", nodes=(a, c), cpus_by_node={a: 10, c: 16}),
            # completing: its CPUs free within seconds (squeue lists them all while its GPUs read free)
            SlurmJob(6, "done", "COMPLETING", nodes=(c,), cpus_by_node={c: 0, e: 16}),
            SlurmJob(2, "k", "PENDING", cpus_by_node={e: 8})]  # a pending job holds nothing it runs on
    room = cpu_room(FABRIC, nodes, jobs, 0.0)
    assert room.free[:5].tolist() == [4, 6, 0, UNKNOWN, 16]  # d: its CPUs not said; a: listed twice, first wins
    assert _names(room.short_of(5)) == {a, c} and _names(room.short_of(7)) == {a, b, c}
    assert _names(room.short_of(1)) == {c} and _names(room.busy()) == {a, b, c, d}
    # a pending job Slurm will start on its required nodes (placer's pin, advice, -w) takes its need there,
    # as its GPUs are spoken for; a held one does not
    pinned = SlurmJob(3, "p", "PENDING", priority=1, reason="Resources", required_nodes=(e,), cpus_per_node=3)
    held_pin = replace(pinned, job_id=4, priority=0, reason="JobHeldUser", required_nodes=(b,))
    room = cpu_room(FABRIC, nodes, [*jobs, pinned, held_pin], 0.0)
    assert room.free[:5].tolist() == [4, 6, 0, UNKNOWN, 13]
    later = room.with_taken({1: 5})  # advice or a pin since: 5 more of b's
    assert _names(later.short_of(2)) == {b, c} and later.free[1] == 1 and room.free[1] == 6


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.integers(0, FABRIC.n_nodes - 1), st.tuples(st.integers(1, 64), st.integers(0, 80)),
                       max_size=12), st.integers(0, 70))
def test_short_of_is_every_node_with_fewer_cpus_left_than_asked(spec: dict[int, tuple[int, int]], need: int) -> None:
    nodes = [SlurmNode(FABRIC.node_names[i], "up", cpus=c) for i, (c, _) in spec.items()]
    jobs = [SlurmJob(k + 1, "j", "RUNNING", nodes=(FABRIC.node_names[i],), cpus_by_node={FABRIC.node_names[i]: a})
            for k, (i, (_, a)) in enumerate(spec.items())]
    room = cpu_room(FABRIC, nodes, jobs, 0.0)
    want = {FABRIC.node_names[i] for i, (c, a) in spec.items() if c - a < max(need, 1)}
    assert _names(room.short_of(need)) == want
    assert _names(room.busy()) == {FABRIC.node_names[i] for i, (_, a) in spec.items() if a > 0}


def test_advice_keeps_off_a_node_with_too_few_cpus_left() -> None:
    d, slurm = make_daemon()
    slurm.nodes, slurm.jobs = _mixed(), [_on_gpu001(time.time() + 86400)]
    d.refresh()
    gpu1 = {"tres_per_node": "gres/gpu:1", "time_limit": 30}
    assert d.decide(req("few", **gpu1, cpus_per_task=4, min_cpus=4))["req_nodes"] == "gpu001"  # 4 left: fits
    d.reservations.clear()
    for ask in ({"cpus_per_task": 8}, {"min_cpus": 8}, {"pn_min_cpus": 6}, {"cpus_per_tres": "gres/gpu:5"}):
        a = d.decide(req("many", **gpu1, **ask))
        assert a["action"] == "advise" and a["req_nodes"] != "gpu001", (ask, a)
        d.reservations.clear()


def test_an_exclusive_job_is_never_advised_a_node_with_a_cpu_taken() -> None:
    """A CPU-only job holds 2 of gpu002's 16 CPUs and none of its GPUs; every other node is drained. An
    --exclusive 8-GPU job cannot start there: no nodes advised (at most one leaf asked of Slurm)."""
    d, slurm = make_daemon()
    slurm.nodes = [SlurmNode(n, "up" if n == "gpu002" else "drain", partitions=("gpu",), cpus=16,
                             busy=n == "gpu002") for n in FABRIC.node_names]
    slurm.jobs = [SlurmJob(job_id=1, name="cpu", state="RUNNING", node_count=1, nodes=("gpu002",),
                           cpus_by_node={"gpu002": 2}, end_time=int(time.time() + 3600))]
    d.refresh()
    a = d.decide(req("x", tres_per_node="gres/gpu:8", shared=0))
    assert "req_nodes" not in a, a
    assert d.decide(req("y", tres_per_node="gres/gpu:8"))["req_nodes"] == "gpu002"  # shared: 14 CPUs left


def _recorded_pins(slurm: RecordingSlurm) -> dict[int, str]:
    pins: dict[int, str] = {}
    slurm.pin = lambda job_id, nodes, num_nodes: pins.__setitem__(job_id, nodes)  # type: ignore[method-assign]
    return pins


def test_apply_pins_a_held_job_off_a_node_with_too_few_cpus_left() -> None:
    for need, on_gpu001 in ((4, True), (8, False)):
        slurm = RecordingSlurm()
        pins = _recorded_pins(slurm)
        now = time.time()
        slurm.nodes, slurm.jobs = _mixed(), [_on_gpu001(now + 86400),
                                             replace(held(5, 1, submitted=now - 10), cpus_per_node=need)]
        out = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=now, hold=HoldRule(1800))
        assert [j for j, _ in out.pinned] == [5] and (pins[5] == "gpu001") == on_gpu001, (need, pins, out)


def test_slurms_own_json_gives_each_nodes_free_cpus_and_each_jobs_need() -> None:
    """22.05's per-node sinfo and core map (our fixture); 24.11's and 26.05's groups and allocations (the
    real documents in ../shared, when present): the MIXED nodes with 14 and 15 CPUs left, and each
    pending job's need (1 CPU: none asked for more)."""
    here = Path(__file__).parent / "data" / "slurm2205"
    sources = [("22.05", here)] + [(v, SHARED / v) for v in ("24.11.5", "26.05.5") if (SHARED / v).is_dir()]
    for version, base in sources:
        nodes = parse_sinfo_json((base / "sinfo.json").read_text())
        jobs = parse_squeue_json((base / "squeue.json").read_text())
        fabric = FABRIC if version == "22.05" else N128
        room = cpu_room(fabric, nodes, jobs, time.time())
        mixed = sorted(int(f) for f in room.free if 0 < f < 16)
        want = {"22.05": [14], "24.11.5": [14, 15], "26.05.5": [14, 15]}[version]
        assert mixed == want, (version, room)
        assert {j.cpus_per_node for j in jobs if j.state == "PENDING"} == {1}, version
        assert all(n.cpus == 16 for n in nodes), version


def test_the_daemon_refresh_reads_the_cpus_left() -> None:
    d, slurm = make_daemon()
    slurm.nodes, slurm.jobs = _mixed(), [_on_gpu001(time.time() + 86400)]
    d.refresh()
    assert d.cpu_room is not None and _names(d.cpu_room.short_of(5)) == {"gpu001"} and d.cpu_room.free[0] == 4


def _half_on_gpu001(end: float) -> SlurmJob:
    """4 GPUs and 8 CPUs of gpu001 taken: 4 GPUs and 8 CPUs left."""
    return SlurmJob(job_id=1, name="r1", state="RUNNING", node_count=1, nodes=("gpu001",),
                    gpu_ids={"gpu001": tuple(range(4))}, cpus_by_node={"gpu001": 8}, end_time=int(end))


def test_advice_given_since_the_last_refresh_takes_its_cpus() -> None:
    """Three 1-GPU jobs of 4 CPUs each, before any refresh: the first two fit gpu001's 8 CPUs left, the
    third goes elsewhere though gpu001 still has 2 GPUs free."""
    d, slurm = make_daemon()
    slurm.nodes, slurm.jobs = _mixed(), [_half_on_gpu001(time.time() + 86400)]
    d.refresh()
    got = [d.decide(req(f"j{k}", tres_per_node="gres/gpu:1", cpus_per_task=4, time_limit=30))["req_nodes"]
           for k in range(3)]
    assert got[:2] == ["gpu001", "gpu001"] and got[2] != "gpu001", got


def test_jobs_pinned_earlier_in_an_apply_pass_take_their_cpus() -> None:
    slurm = RecordingSlurm()
    pins = _recorded_pins(slurm)
    now = time.time()
    slurm.nodes = _mixed()
    slurm.jobs = [_half_on_gpu001(now + 86400),
                  *(replace(held(5 + k, 1, submitted=now - 10 + k), cpus_per_node=4) for k in range(3))]
    out = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=now, hold=HoldRule(1800))
    assert [j for j, _ in out.pinned] == [5, 6, 7], out
    assert [pins[5], pins[6]] == ["gpu001", "gpu001"] and pins[7] != "gpu001", pins


def test_a_block_for_later_is_not_kept_off_a_node_whose_cpus_free_when_its_jobs_end() -> None:
    """The scheduler's look ahead (test_apply_scheduler's cluster, every node's 16 CPUs said and every
    running job holding all of its nodes' CPUs): the exclusive 4-node job is still reserved on leaf 1, whose
    busy node frees at now+100, CPUs and all. Kept off by CPUs now, a node is kept off ahead only when what
    holds its CPUs is not in the timeline: with a CPU-only job on gpu002 as well, leaf 1 is not the block."""
    from .test_apply_scheduler import NOW, cluster

    for cpu_only, on_leaf_1 in ((False, True), (True, False)):
        slurm, pins = cluster()
        slurm.nodes = [SlurmNode(n, "up", partitions=("gpu",), cpus=16) for n in FABRIC.node_names]
        slurm.jobs = [replace(j, cpus_by_node={n: 16 for n in j.nodes}) for j in slurm.jobs]
        if cpu_only:
            slurm.jobs.append(SlurmJob(job_id=20, name="cpu", state="RUNNING", node_count=1, nodes=("gpu002",),
                                       cpus_by_node={"gpu002": 2}, end_time=int(NOW + 100)))
        slurm.jobs.append(replace(held(7, 32), exclusive=True))
        out = apply_once(FABRIC, slurm, PlannerConfig(), max_hold_s=600, now=NOW, hold=HoldRule(7200))
        assert not out.errors, out
        assert (pins.get(7) == "gpu[001-004]") == on_leaf_1, (cpu_only, pins, out)
