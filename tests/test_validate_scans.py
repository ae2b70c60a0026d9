"""The validator's whole-fabric scans are numpy masks (so `placer apply` can check a pin at 27,648 nodes in
about a millisecond); each must say exactly what its per-node rule says, node by node, on any state and
job. The per-node rules (`allowed`, `qualifies`, `whole_free`, `islands_for`) are the validator's own, kept
for the checks of one placement; these tests hold the masks to them.

Fabric: the constraints fabric (two leaves of four 8-GPU nodes of three types with features a, b, c+x) and
a second tree of 4-GPU nodes of another model, so sizes and models differ.
"""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from placer import JobRequest
from placer.validate import _alternatives, _Picture
from topology import ClusterState, load_inventory_text

from .conftest import dedent

FABRIC, _ = load_inventory_text(dedent("""
    version: 1
    node_types:
      a: {gpus: 8, features: [a]}
      b: {gpus: 8, features: [b]}
      c: {gpus: 8, features: [c, x]}
      s: {gpus: 4, gpu_model: l40s, features: [a]}
    nodes:
      - {names: "n[1-2],n5", type: a}
      - {names: "n[3-4],n[6-7]", type: b}
      - {names: n8, type: c}
      - {names: "m[1-4]", type: s}
    switches:
      - {name: top}
      - {name: l1, parent: top, nodes: "n[1-4]"}
      - {name: l2, parent: top, nodes: "n[5-8]"}
      - {name: l3, nodes: "m[1-4]"}
    """))
NAMES = list(FABRIC.node_names)


@st.composite
def pictures(draw: st.DrawFn) -> tuple[_Picture, JobRequest]:
    state = ClusterState(FABRIC)
    for n in range(FABRIC.n_nodes):
        taken = draw(st.sets(st.integers(0, int(FABRIC.node_gpus[n]) - 1)))
        if taken:
            state.allocate(n, sorted(taken))
        if draw(st.booleans()) and draw(st.booleans()):
            state.set_usable(n, False)
    job = JobRequest(
        "j", draw(st.sampled_from([1, 2, 3, 4, 5, 8, 16, 24, 32])),
        features=tuple(draw(st.sets(st.sampled_from(["a", "b", "x"]), max_size=1))),
        constraint=draw(st.sampled_from([None, "a|b", "[a|b]", "[a|c]"])),
        gpu_model=draw(st.sampled_from([None, "l40s", "h100"])),
        exclude=tuple(draw(st.sets(st.sampled_from(NAMES), max_size=3))),
        partition_nodes=draw(st.one_of(st.none(), st.sets(st.sampled_from(NAMES), min_size=1).map(tuple))))
    reserved = frozenset(draw(st.sets(st.sampled_from(NAMES), max_size=2)))
    avoid = frozenset(draw(st.sets(st.sampled_from(NAMES), max_size=2)))
    return _Picture(FABRIC, state, reserved, avoid), job


def _fits_one_node(pic: _Picture, job: JobRequest, n: int) -> bool:
    return any(len(pic.free[n] & set(isl)) >= job.gpus for isl in pic.islands_for(n, job.gpus))


@settings(max_examples=300, deadline=None)
@given(pictures())
def test_every_mask_says_what_its_per_node_rule_says(case: tuple[_Picture, JobRequest]) -> None:
    pic, job = case
    nodes = range(FABRIC.n_nodes)
    sizes = [int(pic.ngpu[n]) for n in nodes if pic.allowed(job, n)]
    assert pic.job_size(job) == (max(sizes) if sizes else int(pic.ngpu.max()))
    for a in _alternatives(job):
        assert pic.allowed_mask(job, a).tolist() == [pic.allowed(job, n, a) for n in nodes]
        for size in (None, 4, 8):
            assert pic.qualifies_mask(job, size, a).tolist() == [pic.qualifies(job, n, size, a) for n in nodes]
        for multi in (True, False):
            want = [bool(pic.usable[n]) and pic.qualifies(job, n, 8 if multi else None, a)
                    and (pic.whole_free(n) if multi else _fits_one_node(pic, job, n)) for n in nodes]
            assert pic.fits_now_mask(job, 8, multi, a).tolist() == want


@settings(max_examples=100, deadline=None)
@given(pictures(), st.lists(st.tuples(st.integers(0, FABRIC.n_nodes - 1), st.sets(st.integers(0, 3))), max_size=6))
def test_free_gpus_read_back_what_was_written(case: tuple[_Picture, JobRequest],
                                              changes: list[tuple[int, set[int]]]) -> None:
    pic, _ = case
    want = {n: pic.free[n] for n in range(FABRIC.n_nodes)}
    for n, ids in changes:  # as the validator takes a placement's GPUs and gives back a running job's
        pic.free[n] -= ids
        want[n] -= ids
        pic.free[n] |= {i + 1 for i in ids}
        want[n] |= {i + 1 for i in ids}
    assert {n: pic.free[n] for n in range(FABRIC.n_nodes)} == want
    assert pic.free.count().tolist() == [len(want[n]) for n in range(FABRIC.n_nodes)]
