"""The model itself: scalable units from rails, the placement tree, immutability, ClusterState counts.

Rail fixture (2 rails; nodes a[1-2] share their rail leaves, so they form one SU; b1 forms another):

                top
             /       \\
          sp1         sp2
         /    \\          \\
      x-r0   x-r1      y-r0  y-r1     <- rail leaves
       a[1-2] a[1-2]    b1    b1
"""
from __future__ import annotations

import random

import numpy as np
import pytest

from topology import ClusterState, NodeState, RequestError, build_fabric, load_inventory_text
from topology.generate import design_for, generate

from .conftest import dedent
from .helpers import random_spec

RAILS = dedent("""
    version: 1
    node_types: {g: {gpus: 8}}
    defaults: {type: g}
    switches:
      - {name: top}
      - {name: sp1, parent: top}
      - {name: sp2, parent: top}
      - {name: x-r0, parent: sp1, rail: 0, nodes: "a[1-2]"}
      - {name: x-r1, parent: sp1, rail: 1, nodes: "a[1-2]"}
      - {name: y-r0, parent: sp2, rail: 0, nodes: b1}
      - {name: y-r1, parent: sp2, rail: 1, nodes: b1}
    """)


def test_rail_leaves_form_scalable_units() -> None:
    f, _ = load_inventory_text(RAILS)
    assert f.n_leaves == 2 and f.group_names == ("x", "y", "sp1", "sp2", "top")
    assert f.rails == 2
    assert [f.node_leaf[f.node_index[n]] for n in ("a1", "a2", "b1")] == [0, 0, 1]
    assert f.group_switches[0] == (f.switch_index["x-r0"], f.switch_index["x-r1"])
    assert list(f.group_level) == [0, 0, 1, 1, 2]
    assert f.leaf_hops(0, 1) == 4 and f.leaf_hops(0, 0) == 0


def test_per_rail_spines_merge_into_one_pod_group() -> None:
    """Rail-optimised planes: rail r leaves go to rail r spines; the two spines of a pod are one group."""
    f, _ = load_inventory_text(dedent("""
        version: 1
        node_types: {g: {gpus: 8}}
        defaults: {type: g}
        switches:
          - {name: core}
          - {name: pod-r0, parent: core}
          - {name: pod-r1, parent: core}
          - {name: su1-r0, parent: pod-r0, rail: 0, nodes: "n[1-2]"}
          - {name: su1-r1, parent: pod-r1, rail: 1, nodes: "n[1-2]"}
          - {name: su2-r0, parent: pod-r0, rail: 0, nodes: "n[3-4]"}
          - {name: su2-r1, parent: pod-r1, rail: 1, nodes: "n[3-4]"}
        """))
    assert f.group_names == ("su1", "su2", "pod-r0", "core")
    pod = f.group_names.index("pod-r0")
    assert f.group_switches[pod] == (f.switch_index["pod-r0"], f.switch_index["pod-r1"])
    assert f.group_parent.tolist() == [pod, pod, f.group_names.index("core"), -1]


def test_fabric_arrays_are_read_only() -> None:
    f, _ = load_inventory_text(RAILS)
    for arr in (f.node_gpus, f.node_leaf, f.group_parent, f.leaf_nodes):
        with pytest.raises(ValueError):
            arr[0] = 1


def test_leaf_csr_lists_every_node_once() -> None:
    f = generate(design_for("campus-16k"))
    assert sorted(f.leaf_nodes.tolist()) == list(range(f.n_nodes))
    for leaf in (0, 17, f.n_leaves - 1):
        assert set(f.node_leaf[f.nodes_of_leaf(leaf)].tolist()) == {leaf}


def _fresh_counts(state: ClusterState) -> tuple[np.ndarray, ...]:
    fresh = state.copy()
    fresh.recompute()
    return fresh.group_free_nodes, fresh.group_free_gpus, fresh.group_usable_nodes


@pytest.mark.parametrize("seed", range(15))
def test_incremental_counts_match_a_full_recompute(seed: int) -> None:
    fabric, _ = build_fabric(random_spec(seed))
    state = ClusterState(fabric)
    rng = random.Random(seed)
    held: list[tuple[int, list[int]]] = []
    for _ in range(200):
        node = rng.randrange(fabric.n_nodes)
        op = rng.random()
        if op < 0.5 and state.free_gpu_ids(node):
            free = state.free_gpu_ids(node)
            take = rng.sample(free, rng.randint(1, len(free)))
            state.allocate(node, take)
            held.append((node, take))
        elif op < 0.8 and held:
            n, g = held.pop(rng.randrange(len(held)))
            state.release(n, g)
        else:
            state.set_usable(node, rng.random() < 0.5)
    for got, want in zip((state.group_free_nodes, state.group_free_gpus, state.group_usable_nodes),
                         _fresh_counts(state)):
        assert got.tolist() == want.tolist()
    # the root holds the whole cluster's totals
    root = int(np.nonzero(fabric.group_parent < 0)[0][0])
    assert state.group_free_gpus[root] == int(np.where(state.usable, state.free_gpus, 0).sum())


def test_down_nodes_start_unusable() -> None:
    f, _ = load_inventory_text(RAILS + "nodes:\n  - {names: a1, state: drain, reason: fan}\n  - {names: 'a2,b1'}\n")
    s = ClusterState(f)
    assert f.node_state[0] == NodeState.DRAIN
    assert s.group_free_nodes[0] == 1 and s.group_usable_nodes.tolist()[:2] == [1, 1]


def test_double_allocation_and_bad_index_are_refused() -> None:
    f, _ = load_inventory_text(RAILS)
    s = ClusterState(f)
    s.allocate(0, [0, 1])
    with pytest.raises(RequestError, match="not all free"):
        s.allocate(0, [1])
    with pytest.raises(RequestError, match="no GPU index 8"):
        s.allocate(0, [8])
    with pytest.raises(RequestError, match="not all allocated"):
        s.release(0, [2])
    s.release(0, [0, 1])
    assert s.group_free_nodes[0] == 2


def test_subset_keeps_the_tree_of_the_kept_nodes() -> None:
    from topology.subset import first_nodes

    f = generate(design_for("tiny"))
    sub = first_nodes(f, 6)
    assert sub.node_names == f.node_names[:6]
    assert sub.group_names == ("p01-su01", "p01-su02", "p01-spine", "core")
    assert first_nodes(f, 100) is f


@pytest.mark.parametrize("seed", range(5))
def test_allocate_many_equals_one_by_one(seed: int) -> None:
    fabric, _ = build_fabric(random_spec(seed))
    rng = random.Random(seed)
    a, b = ClusterState(fabric), ClusterState(fabric)
    for n in rng.sample(range(fabric.n_nodes), k=min(3, fabric.n_nodes)):
        a.set_usable(n, False)
        b.set_usable(n, False)
    items = []
    for n in rng.sample(range(fabric.n_nodes), k=max(1, fabric.n_nodes // 2)):
        ids = rng.sample(a.free_gpu_ids(n), rng.randint(1, len(a.free_gpu_ids(n))))
        items.append((n, ids))
        a.allocate(n, ids)
    b.allocate_many(items)
    for k in ("free_mask", "free_gpus", "group_free_nodes", "group_free_gpus", "group_usable_nodes"):
        assert getattr(a, k).tolist() == getattr(b, k).tolist(), k
    with pytest.raises(RequestError):
        b.allocate_many([items[0]])  # already taken: refused, nothing changed
    assert b.free_mask.tolist() == a.free_mask.tolist()


@pytest.mark.parametrize("seed", range(5))
def test_release_many_equals_one_by_one(seed: int) -> None:
    """Several jobs on one node end together (a walk's skipped ends, placer/timeline.py): the same counts
    as releasing them one by one, drained nodes included; a GPU released twice (after, or in the same batch)
    is refused, nothing changed."""
    fabric, _ = build_fabric(random_spec(seed))
    rng = random.Random(seed)
    a = ClusterState(fabric)
    jobs = []
    for n in range(fabric.n_nodes):
        while (free := a.free_gpu_ids(n)) and rng.random() < 0.7:
            ids = rng.sample(free, rng.randint(1, len(free)))
            a.allocate(n, ids)
            jobs.append((n, ids))
    for n in rng.sample(range(fabric.n_nodes), k=min(3, fabric.n_nodes)):
        a.set_usable(n, False)
    b = a.copy()
    ending = rng.sample(jobs, k=len(jobs) // 2)
    if ending:  # the same GPUs twice in one batch: refused, nothing changed
        c = a.copy()
        with pytest.raises(RequestError, match="not all allocated"):
            c.release_many([*ending, ending[-1]])
        assert c.free_mask.tolist() == a.free_mask.tolist() and c.free_gpus.tolist() == a.free_gpus.tolist()
    for n, ids in ending:
        a.release(n, ids)
    b.release_many(ending)
    for k in ("free_mask", "free_gpus", "group_free_nodes", "group_free_gpus", "group_usable_nodes"):
        assert getattr(a, k).tolist() == getattr(b, k).tolist(), k
    if ending:
        with pytest.raises(RequestError):
            b.release_many([ending[0]])
        assert b.free_mask.tolist() == a.free_mask.tolist()
