"""The one validator every placement passes, whatever produced it.

Deliberately independent of the planner's code: it replays the placements in priority order on its
own picture of the cluster (per node bitmasks and flags; the scans over every node are numpy array
operations, so a check at 27,648 nodes takes milliseconds) and recomputes everything from the fabric
and the README's formulas (GPU counts, no GPU given twice, no down node, whole nodes for multi-node
jobs, features, exclusions, max_switches, leaves spanned, the leaf lower bound, the cost). Pending and
unplaceable claims are checked too: a job said not to fit must really not fit.
"""
from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import numpy as np

from topology import ClusterState, Fabric

from .constraints import Constraint, parse_constraint
from .cost import cost_weights, placement_cost
from .index import index_for
from .islands import island_masks
from .jobs import JobRequest
from .types import Placement


def _ancestors(f: Fabric, leaf: int) -> list[int]:
    out, g = [], leaf
    while g >= 0:
        out.append(g)
        g = int(f.group_parent[g])
    return out


def _group_nodes(f: Fabric) -> dict[int, set[int]]:
    members: dict[int, set[int]] = {g: set() for g in range(f.n_groups)}
    for n in range(f.n_nodes):
        for g in _ancestors(f, int(f.node_leaf[n])):
            members[g].add(n)
    return members


@lru_cache(maxsize=8)
def _leaf_roots(f: Fabric) -> tuple[int, ...]:
    """The root above each leaf."""
    return tuple(_ancestors(f, leaf)[-1] for leaf in range(f.n_leaves))


def _fewest_in_a_tree(f: Fabric, per_leaf: dict[int, int], need: int) -> int | None:
    """Fewest leaves holding `need` nodes, all under one root: disjoint trees are never spanned."""
    by_root: dict[int, list[int]] = {}
    roots = _leaf_roots(f)
    for leaf, c in per_leaf.items():
        by_root.setdefault(roots[leaf], []).append(c)
    ks = [k for cs in by_root.values() if (k := _fewest(cs, need)) is not None]
    return min(ks, default=None if need > 0 else 0)


def _fewest(counts: Iterable[int], need: int) -> int | None:
    got, k = 0, 0
    for c in sorted((c for c in counts if c > 0), reverse=True):
        got += c
        k += 1
        if got >= need:
            return k
    return None if need > 0 else 0


class _FreeGpus:
    """Per node, its free GPU ids as a set (what the checks read), stored as one bitmask per node so the
    whole-fabric scans below are array operations. `pic.free[n] -= ids` writes back through __setitem__."""

    def __init__(self, initial: ClusterState) -> None:
        self.bits = initial.free_mask.astype(np.uint64).copy()

    def __getitem__(self, n: int) -> set[int]:
        m = int(self.bits[n])
        return {g for g in range(m.bit_length()) if m >> g & 1}

    def __setitem__(self, n: int, ids: set[int]) -> None:
        self.bits[n] = np.uint64(sum(1 << g for g in ids))

    def count(self) -> np.ndarray:
        """Free GPUs per node."""
        return np.bitwise_count(self.bits).astype(np.int64)


class _Picture:
    def __init__(self, f: Fabric, initial: ClusterState, reserved: set[str] | frozenset[str],
                 avoid_multi: frozenset[str] = frozenset()) -> None:
        self.f, self.reserved, self.avoid_multi = f, frozenset(reserved), avoid_multi
        self.level = [int(x) for x in f.group_level]
        self.free = _FreeGpus(initial)
        self.usable = np.asarray(initial.usable, dtype=bool).copy()
        self.ngpu = f.node_gpus.astype(np.int64)
        self.type_masks = index_for(f).type_islands
        self._members: dict[int, set[int]] | None = None
        self._named: dict[int, tuple[object, np.ndarray]] = {}

    def named(self, names: tuple[str, ...] | frozenset[str]) -> np.ndarray:
        """`_name_mask` of `names`, looked up once per picture (by identity: hashing a partition's 27,648
        names on every per-node check would cost more than the check)."""
        hit = self._named.get(id(names))
        if hit is None or hit[0] is not names:
            hit = (names, _name_mask(self.f, names))
            self._named[id(names)] = hit
        return hit[1]

    @property
    def members(self) -> dict[int, set[int]]:
        """The nodes under each group (built once, only when a cost is checked)."""
        if self._members is None:
            self._members = _group_nodes(self.f)
        return self._members

    def islands_for(self, n: int, gpus: int) -> list[tuple[int, ...]]:
        """The GPU sets the job may take on node n (the one island rule, placer/islands.py)."""
        masks = island_masks(self.type_masks[int(self.f.node_type[n])], gpus)
        return [tuple(g for g in range(int(self.ngpu[n])) if m >> g & 1) for m in masks]

    def whole_free(self, n: int) -> bool:
        return bool(self.usable[n]) and len(self.free[n]) == self.ngpu[n]

    def _type_allows(self, j: JobRequest, t: int, alternative: int | None) -> bool:
        """Features, --constraint (one matching-OR alternative, or any) and GPU model allow nodes of type t."""
        nt = self.f.node_types[t]
        c = _constraint(j)
        return (set(j.features) <= set(nt.features) and (c is None or c.allows(frozenset(nt.features), alternative))
                and (j.gpu_model is None or nt.gpu_model.lower() == j.gpu_model))

    def allowed(self, j: JobRequest, n: int, alternative: int | None = None) -> bool:
        """The node's type allows the job, and neither the job's exclusions nor its partition keep it off."""
        return (self._type_allows(j, int(self.f.node_type[n]), alternative) and not self.named(j.exclude)[n]
                and not (j.off_mask is not None and j.off_mask[n])
                and (j.partition_nodes is None or bool(self.named(j.partition_nodes)[n])))

    def allowed_mask(self, j: JobRequest, alternative: int | None = None) -> np.ndarray:
        """`allowed` for every node at once."""
        by_type = np.array([self._type_allows(j, t, alternative) for t in range(len(self.f.node_types))], dtype=bool)
        ok = by_type[self.f.node_type] if len(by_type) else np.zeros(self.f.n_nodes, dtype=bool)
        ok &= ~self.named(j.exclude)
        if j.off_mask is not None:
            ok &= ~j.off_mask
        if j.partition_nodes is not None:
            ok &= self.named(j.partition_nodes)
        return ok

    def qualifies(self, j: JobRequest, n: int, size: int | None, alternative: int | None = None) -> bool:
        if self.f.node_names[n] in self.reserved:  # hot spares: only replacements may use them
            return False
        if not self.allowed(j, n, alternative):
            return False
        if size is not None and self.f.node_names[n] in self.avoid_multi:  # degraded_links: avoid
            return False
        return bool(self.ngpu[n] == size if size is not None else self.ngpu[n] >= j.gpus)

    def qualifies_mask(self, j: JobRequest, size: int | None, alternative: int | None = None) -> np.ndarray:
        """`qualifies` for every node at once."""
        ok = self.allowed_mask(j, alternative)
        ok &= ~self.named(self.reserved)
        if size is not None:
            ok &= ~self.named(self.avoid_multi)
        return ok & (self.ngpu == size if size is not None else self.ngpu >= j.gpus)

    def job_size(self, j: JobRequest) -> int:
        if j.gpus_per_node is not None:
            return j.gpus_per_node
        sizes = self.ngpu[self.allowed_mask(j)]
        return int(sizes.max()) if sizes.size else int(self.ngpu.max())

    def leaves_now(self, j: JobRequest, size: int, multi: bool, need: int) -> int | None:
        """Fewest leaves the job fits in now, by this validator's own counting (the best matching-OR
        alternative's)."""
        ks = [k for a in _alternatives(j) if (k := self._leaves_now(j, size, multi, need, a)) is not None]
        return min(ks, default=None)

    def fits_now_mask(self, j: JobRequest, size: int, multi: bool, alternative: int | None) -> np.ndarray:
        """Per node: usable, qualifies, and free for the job (whole, or enough free GPUs in one island)."""
        ok = self.usable & self.qualifies_mask(j, size if multi else None, alternative)
        if multi:
            return ok & (self.free.count() == self.ngpu)
        room = np.zeros(self.f.n_nodes, dtype=bool)
        for t in np.unique(self.f.node_type[ok]):
            idx = np.nonzero(ok & (self.f.node_type == t))[0]
            for m in island_masks(self.type_masks[int(t)], j.gpus):
                room[idx] |= np.bitwise_count(self.free.bits[idx] & np.uint64(m)) >= j.gpus
        return ok & room

    def _leaves_now(self, j: JobRequest, size: int, multi: bool, need: int, alternative: int | None) -> int | None:
        return _fewest_in_a_tree(self.f, _per_leaf(self.f, self.fits_now_mask(j, size, multi, alternative)), need)

    def leaves_empty(self, j: JobRequest, size: int, multi: bool, need: int) -> int | None:
        """Fewest leaves the job fits in on an empty fabric (nodes in service; best alternative)."""
        ks = []
        for a in _alternatives(j):
            static = (self.f.node_state == 0) & self.qualifies_mask(j, size if multi else None, a)
            if (k := _fewest_in_a_tree(self.f, _per_leaf(self.f, static), need)) is not None:
                ks.append(k)
        return min(ks, default=None)


@lru_cache(maxsize=64)
def _name_mask(f: Fabric, names: tuple[str, ...] | frozenset[str]) -> np.ndarray:
    """Per node: its name is in `names` (names not in the fabric are ignored). Cached: a partition's
    tuple of 27,648 names is the same object for every job of the pass."""
    mask = np.zeros(f.n_nodes, dtype=bool)
    mask[[i for name in names if (i := f.node_index.get(name)) is not None]] = True
    mask.flags.writeable = False
    return mask


def _per_leaf(f: Fabric, mask: np.ndarray) -> dict[int, int]:
    """Nodes of `mask` per leaf (leaves with none left out)."""
    counts = np.bincount(f.node_leaf[mask], minlength=f.n_leaves)
    return {int(leaf): int(counts[leaf]) for leaf in np.nonzero(counts)[0]}


def _constraint(j: JobRequest) -> Constraint | None:
    return parse_constraint(j.constraint)[0] if j.constraint else None


def _one_alternative(pic: _Picture, j: JobRequest, nodes: Iterable[int]) -> bool:
    """Every node meets the same matching-OR alternative of the job's --constraint (`[a|b]`), if it has one."""
    nodes = list(nodes)
    return any(all(pic.allowed(j, n, a) for n in nodes) for a in _alternatives(j))


def _alternatives(j: JobRequest) -> list[int | None]:
    c = _constraint(j)
    return [None] if c is None or len(c.alternatives) == 1 else list(range(len(c.alternatives)))


def validate(fabric: Fabric, initial: ClusterState, jobs: list[JobRequest], placements: list[Placement],
             check_cost: bool = True, reserved: set[str] | frozenset[str] = frozenset(),
             avoid_multi: frozenset[str] = frozenset()) -> list[str]:
    """Every violation found, as readable strings (empty: all good). `reserved`: hot spares no job may
    take; `avoid_multi`: nodes no multi-node job may take (placer.engine.avoided_nodes)."""
    bad: list[str] = []
    by_id = {j.job_id: j for j in jobs}
    pos = {j.job_id: i for i, j in enumerate(jobs)}
    pic = _Picture(fabric, initial, reserved, avoid_multi)
    seen = set()
    for p in placements:
        if p.job not in by_id:
            bad.append(f"{p.job}: no such job")
        if p.job in seen:
            bad.append(f"{p.job}: placed twice")
        seen.add(p.job)
    order = sorted((p for p in placements if p.job in by_id),
                   key=lambda p: (-by_id[p.job].priority, by_id[p.job].submit_time or 0.0, pos[p.job]))
    for p in order:
        j = by_id[p.job]
        if j.not_yet_honoured():
            if p.status != "unplaceable":
                bad.append(f"{p.job}: carries {j.not_yet_honoured()}, which placer does not honour, but is {p.status}")
            continue
        size = pic.job_size(j)
        multi, need = j.multi_node(size), j.nodes_needed(size)
        k_now = pic.leaves_now(j, size, multi, need)
        if p.status != "placed":
            bad += _check_not_placed(pic, p, j, size, multi, need, k_now)
        else:
            bad += _check_placed(pic, p, j, size, multi, need, k_now, check_cost)
    return bad


def _check_not_placed(pic: _Picture, p: Placement, j: JobRequest, size: int, multi: bool, need: int,
                      k_now: int | None) -> list[str]:
    """A job said not to fit must really not fit (now; for `unplaceable`, even on an empty fabric)."""
    bad = []
    if k_now is not None and (j.max_switches is None or k_now <= j.max_switches):
        bad.append(f"{p.job}: said {p.status} but fits now on {k_now} leaves")
    if p.status == "unplaceable":
        ks = pic.leaves_empty(j, size, multi, need)
        if ks is not None and (j.max_switches is None or ks <= j.max_switches):
            bad.append(f"{p.job}: said unplaceable but fits an empty fabric on {ks} leaves")
    return bad


def _check_placed(pic: _Picture, p: Placement, j: JobRequest, size: int, multi: bool, need: int,
                  k_now: int | None, check_cost: bool) -> list[str]:
    """Nodes, GPUs, leaves, bound, rank order and cost of a placed job; then its GPUs are taken."""
    f = pic.f
    nodes = [f.node_index.get(name, -1) for name in p.nodes]
    if -1 in nodes:
        return [f"{p.job}: unknown node in {p.nodes}"]
    bad = []
    if len(set(nodes)) != len(nodes):
        bad.append(f"{p.job}: a node listed twice")
    if set(p.gpu_ids) != set(p.nodes):
        return bad + [f"{p.job}: gpu_ids nodes {sorted(p.gpu_ids)} differ from nodes {sorted(p.nodes)}"]
    if len(nodes) != need:
        bad.append(f"{p.job}: {len(nodes)} nodes, needs {need}")
    for n in nodes:
        bad += _check_node(pic, p, j, n, size, multi)
    if not _one_alternative(pic, j, nodes):
        bad.append(f"{p.job}: its nodes do not all meet one alternative of --constraint {j.constraint!r}")
    total = sum(len(v) for v in p.gpu_ids.values())
    if not multi and total != j.gpus:
        bad.append(f"{p.job}: {total} GPUs given, asked {j.gpus}")
    bad += _check_leaves(f, p, j, nodes, k_now)
    if check_cost:
        want = _cost(f, pic.members, pic.level, pic.free, pic.usable, pic.ngpu, j, nodes, p.gpu_ids, multi)
        if p.cost != want:
            bad.append(f"{p.job}: cost {p.cost}, recomputed {want}")
    for n in nodes:
        pic.free[n] -= set(p.gpu_ids[f.node_names[n]])
    return bad


def _check_leaves(f: Fabric, p: Placement, j: JobRequest, nodes: list[int], k_now: int | None) -> list[str]:
    """Leaves spanned as reported, within max_switches and one tree, the bound, rank order by leaf."""
    bad = []
    leaves = [int(f.node_leaf[n]) for n in nodes]
    leaf_set = set(leaves)
    if p.leaves != len(leaf_set):
        bad.append(f"{p.job}: reports {p.leaves} leaves, spans {len(leaf_set)}")
    if len({_ancestors(f, leaf)[-1] for leaf in leaf_set}) > 1:
        bad.append(f"{p.job}: spans disjoint trees (no common switch)")
    if j.max_switches is not None and len(leaf_set) > j.max_switches:
        bad.append(f"{p.job}: spans {len(leaf_set)} leaves, max_switches {j.max_switches}")
    if p.leaf_lower_bound != k_now:
        bad.append(f"{p.job}: leaf_lower_bound {p.leaf_lower_bound}, recomputed {k_now}")
    # rank order: each leaf's nodes are contiguous
    runs = [leaves[0]] + [b for a, b in zip(leaves, leaves[1:]) if a != b]
    if len(runs) != len(leaf_set):
        bad.append(f"{p.job}: rank order leaves and re-enters a leaf")
    return bad


def _check_node(pic: _Picture, p: Placement, j: JobRequest, n: int, size: int, multi: bool) -> list[str]:
    name = pic.f.node_names[n]
    ids = p.gpu_ids[name]
    bad = []
    if not pic.usable[n]:
        bad.append(f"{p.job}: node {name} is down or drained")
    if not pic.qualifies(j, n, size if multi else None):
        bad.append(f"{p.job}: node {name} does not qualify (features, GPU model, size or exclusion)")
    if len(set(ids)) != len(ids) or not set(ids) <= set(range(pic.ngpu[n])):
        bad.append(f"{p.job}: bad GPU ids {ids} on {name}")
    if not set(ids) <= pic.free[n]:
        bad.append(f"{p.job}: GPUs {sorted(set(ids) - pic.free[n])} of {name} already given")
    if multi and sorted(ids) != list(range(pic.ngpu[n])):
        bad.append(f"{p.job}: multi-node job must take whole node {name}, got GPUs {ids}")
    if not multi and not any(set(ids) <= set(isl) for isl in pic.islands_for(n, j.gpus)):
        bad.append(f"{p.job}: GPUs {ids} of {name} span NVLink islands")
    return bad


def _cost(f: Fabric, members: dict[int, set[int]], level: list[int], free: _FreeGpus, usable: np.ndarray,
          ngpu: np.ndarray, j: JobRequest, nodes: list[int], gpu_ids: dict[str, list[int]], multi: bool) -> int:
    """The cost's terms counted from first principles on the validator's own picture; the formula and its
    weights are the one definition (placer/cost.py)."""
    def whole(n: int) -> bool:
        return usable[n] and len(free[n]) == ngpu[n]

    def group_whole(g: int) -> bool:
        return all(whole(n) for n in members[g])

    taken_nodes = set(nodes) if multi else {n for n in nodes if len(gpu_ids[f.node_names[n]]) == ngpu[n]}
    leaves = {int(f.node_leaf[n]) for n in nodes}
    tier = 0
    broken_groups = 0
    for t in range(1, max(level) + 1):
        gs = {g for g in range(f.n_groups) if level[g] == t and members[g] & set(nodes)}
        tier += t * max(len(gs) - 1, 0)
        broken_groups += sum(1 for g in gs if group_whole(g) and not members[g] <= taken_nodes)
    broken_leaves = sum(1 for l in leaves if group_whole(l) and not members[l] <= taken_nodes)
    if multi:
        free_in = {l: sum(1 for n in members[l] if whole(n)) for l in leaves}
        took = {l: sum(1 for n in nodes if int(f.node_leaf[n]) == l) for l in leaves}
        partial = sum(1 for l in leaves if took[l] < free_in[l])
        leftover = sum(free_in.values()) - len(nodes)
        broken_nodes = 0
    else:
        n = nodes[0]
        leftover = len(free[n]) - len(gpu_ids[f.node_names[n]])
        partial = int(leftover > 0)
        broken_nodes = int(whole(n) and len(gpu_ids[f.node_names[n]]) < ngpu[n])
    return int(placement_cost(cost_weights(f), leaves=len(leaves), tier=tier, broken_nodes=broken_nodes,
                              broken_leaves=broken_leaves, broken_groups=broken_groups, partial=partial,
                              leftover=leftover))


RunningJob = tuple[str, float | None, float | None, Iterable[tuple[int, Iterable[int]]]]  # id, start, end, GPUs


def validate_reservation(fabric: Fabric, initial: ClusterState, job: JobRequest, running: Iterable[RunningJob],
                         nodes: list[str], start: float, now: float, idle_gpu_hours: float,
                         requeued: Iterable[tuple[str, float]] = ()) -> list[str]:
    """A hero-run reservation (placer/reserve.py), recomputed on this validator's own picture: its nodes are
    whole nodes the job qualifies for, usable and free by `start` once every running job ending by then, or
    requeued, is gone; it spans no more leaves than the job's bound on an empty fabric, within one tree; the
    idle GPU-hours it reports (each node idle from when it frees until `start`) and the work each requeued
    job loses (its GPUs times how long it has run) are what they are."""
    pic = _Picture(fabric, initial, frozenset())
    size = pic.job_size(job)
    need = job.nodes_needed(size)
    ends, unknown, bad = _release_by(pic, running, start, now, dict(requeued))
    idx = [fabric.node_index.get(name, -1) for name in nodes]
    if -1 in idx:
        return bad + [f"reservation: unknown node in {nodes}"]
    if len(set(idx)) != need:
        bad.append(f"reservation: {len(set(idx))} nodes, the job needs {need}")
    for n in idx:
        if not (pic.usable[n] and pic.qualifies(job, n, size) and len(pic.free[n]) == pic.ngpu[n]):
            bad.append(f"reservation: {fabric.node_names[n]} is not a whole usable {size}-GPU node free by the start")
    if not _one_alternative(pic, job, idx):
        bad.append(f"reservation: its nodes do not all meet one alternative of --constraint {job.constraint!r}")
    leaves = {int(fabric.node_leaf[n]) for n in idx}
    k = pic.leaves_empty(job, size, True, need)
    if k is None or len(leaves) > k:
        bad.append(f"reservation: spans {len(leaves)} leaves, the job's bound is {k}")
    if len({_ancestors(fabric, leaf)[-1] for leaf in leaves}) > 1:
        bad.append("reservation: spans disjoint trees")
    idle = 0.0
    for n in idx:
        free_at = now if n not in ends and n not in unknown else ends.get(n, now)
        idle += pic.ngpu[n] * (start - max(free_at, now))
    if abs(idle / 3600 - idle_gpu_hours) > 1e-6:
        bad.append(f"reservation: reports {idle_gpu_hours:.6f} idle GPU-hours, recomputed {idle / 3600:.6f}")
    return bad


def _release_by(pic: _Picture, running: Iterable[RunningJob], start: float, now: float, gone: dict[str, float]
                ) -> tuple[dict[int, float], set[int], list[str]]:
    """Free what the running jobs ending by `start`, and the requeued ones, hold; (per node its last known
    end, nodes held by a job of unknown end, problems with the requeued jobs' reported loss)."""
    ends: dict[int, float] = {}
    unknown: set[int] = set()
    bad: list[str] = []
    for job_id, began, end, alloc in running:
        alloc = list(alloc)
        if job_id in gone:
            gpus = sum(len(list(ids)) for _, ids in alloc)
            want = 1e9 if began is None else gpus * max(0.0, now - began) / 3600
            if abs(want - gone.pop(job_id)) > 1e-6:
                bad.append(f"reservation: requeuing {job_id} loses {want:.6f} GPU-hours, not what is reported")
            for n, ids in alloc:
                pic.free[n] |= set(ids)
            continue
        for n, ids in alloc:
            if end is None:
                unknown.add(n)
                continue
            ends[n] = max(ends.get(n, now), end)
            if end <= start:
                pic.free[n] |= set(ids)
    return ends, unknown, bad + [f"reservation: requeues {j}, which is not running" for j in gone]
