"""The canonical fabric model: immutable, index-based, arrays for hot paths.

Invariant (as in NVIDIA topograph): importers produce a FabricSpec, `build_fabric` is the only way
to a Fabric, exporters only translate a Fabric. The placement tree ("groups") is derived here:
its leaves are scalable units (nodes whose rail leaves coincide; a plain leaf switch when there are
no rails), its inner groups are logical switches merged where they serve the same children.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from types import MappingProxyType
from typing import Mapping

import numpy as np

from .problems import InventoryError, Problem, errors_in
from .spec import NODE_STATES, FabricSpec, NodeType


class NodeState(IntEnum):
    UP = 0
    DRAIN = 1
    DOWN = 2


@dataclass(frozen=True)
class Switch:
    """A logical switch of the inventory (tier = Slurm's level: 0 for leaves, 1 + max of children)."""

    name: str
    parent: int  # switch index, -1 at a root
    tier: int
    rail: int | None
    members: tuple[str, ...]
    link_speed: int | None
    su: str | None
    nodes: tuple[int, ...]  # node indices directly under it (leaves only)
    children: tuple[int, ...]


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False)
class Fabric:
    name: str
    node_types: tuple[NodeType, ...]
    switches: tuple[Switch, ...]
    node_names: tuple[str, ...]
    node_index: Mapping[str, int]
    node_type: np.ndarray  # int16 index into node_types
    node_gpus: np.ndarray  # int16
    node_state: np.ndarray  # int8 NodeState
    node_reason: Mapping[int, str]
    node_leaf: np.ndarray  # int32: placement leaf (group) index
    node_domain: np.ndarray  # int32: NVLink domain index or -1
    node_switches: tuple[tuple[int, ...], ...]  # leaf switches a node hangs from, by rail
    domain_names: tuple[str, ...]
    group_names: tuple[str, ...]
    group_level: np.ndarray  # int8; leaves (SUs) are groups 0..n_leaves-1 at level 0
    group_parent: np.ndarray  # int32, -1 at the root
    group_switches: tuple[tuple[int, ...], ...]
    n_leaves: int
    leaf_node_ptr: np.ndarray  # CSR over leaves: nodes of leaf l are leaf_nodes[ptr[l]:ptr[l+1]]
    leaf_nodes: np.ndarray
    switch_index: Mapping[str, int]

    # -- sizes -----------------------------------------------------------------------------------
    @property
    def n_nodes(self) -> int:
        return len(self.node_names)

    @property
    def n_groups(self) -> int:
        return len(self.group_names)

    @property
    def depth(self) -> int:
        """Number of group levels (1 = leaves only)."""
        return int(self.group_level.max()) + 1 if self.n_groups else 0

    @property
    def total_gpus(self) -> int:
        return int(self.node_gpus.sum())

    @property
    def rails(self) -> int:
        return len({s.rail for s in self.switches if s.rail is not None})

    def nodes_of_leaf(self, leaf: int) -> np.ndarray:
        return self.leaf_nodes[self.leaf_node_ptr[leaf] : self.leaf_node_ptr[leaf + 1]]

    def group_ancestors(self, group: int) -> list[int]:
        """group, its parent, ... up to the root."""
        out = [group]
        while (group := int(self.group_parent[group])) >= 0:
            out.append(group)
        return out

    def group_children(self) -> list[list[int]]:
        kids: list[list[int]] = [[] for _ in range(self.n_groups)]
        for g, p in enumerate(self.group_parent.tolist()):
            if p >= 0:
                kids[p].append(g)
        return kids

    def leaf_hops(self, a: int, b: int) -> int:
        """Switch-to-switch hops between two leaves through their lowest common ancestor (Slurm's dist)."""
        if a == b:
            return 0
        up_a = self.group_ancestors(a)
        pos = {g: i for i, g in enumerate(up_a)}
        for j, g in enumerate(self.group_ancestors(b)):
            if g in pos:
                return pos[g] + j
        return -1  # no common ancestor: validated away, kept for safety

    def to_networkx(self):  # pragma: no cover - thin view
        """The placement tree as a networkx DiGraph (parent -> child), for algorithms that want one."""
        import networkx as nx

        g = nx.DiGraph()
        for i, name in enumerate(self.group_names):
            g.add_node(name, level=int(self.group_level[i]))
        for i, p in enumerate(self.group_parent.tolist()):
            if p >= 0:
                g.add_edge(self.group_names[p], self.group_names[i])
        return g


# ------------------------------------------------------------------------------------------------
class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        if rb < ra:
            ra, rb = rb, ra
        self.parent[rb] = ra
        return True


_SEPARATORS = "-_.:"


def _common_name(names: list[str]) -> str:
    """Shared prefix of rail-leaf names cut at a separator, rail marker dropped (`su01-r0..r7` -> `su01`)."""
    if not names:
        return ""
    first, last = min(names), max(names)
    i = 0
    while i < min(len(first), len(last)) and first[i] == last[i]:
        i += 1
    prefix = first[:i]
    if i < len(first) and first[i] not in _SEPARATORS and prefix and prefix[-1] not in _SEPARATORS:
        cut = max(prefix.rfind(c) for c in _SEPARATORS)  # do not end inside a token
        prefix = prefix[: cut + 1] if cut >= 0 else ""
    prefix = prefix.rstrip(_SEPARATORS)
    for marker in ("-rail", "_rail", "-r", "_r", ".r"):
        if prefix.lower().endswith(marker):
            prefix = prefix[: -len(marker)]
            break
    return prefix.rstrip(_SEPARATORS)


def build_fabric(spec: FabricSpec, source: str | None = None) -> tuple[Fabric, list[Problem]]:
    """Check a FabricSpec as a whole and build the Fabric.

    Returns the fabric and the warnings; raises InventoryError with *every* problem found when any
    of them is an error, so a user fixes their file in one pass.
    """
    problems: list[Problem] = []
    fabric = _build(spec, problems)
    if fabric is None or errors_in(problems):
        raise InventoryError(problems, source)
    return fabric, problems


def _build(spec: FabricSpec, problems: list[Problem]) -> Fabric | None:  # noqa: C901 - one pass, many checks
    err = problems.append

    # -- node types ------------------------------------------------------------------------------
    type_names = list(spec.node_types)
    type_idx = {n: i for i, n in enumerate(type_names)}
    for tname, t in spec.node_types.items():
        tpath = f"node_types.{tname}"
        if t.gpus < 1:
            err(Problem(f"{tpath}.gpus", f"node type {tname!r} has {t.gpus} GPUs; a GPU node needs at least 1"))
        if t.nvlink_islands:
            seen = sorted(g for isl in t.nvlink_islands for g in isl)
            if seen != list(range(t.gpus)):
                err(Problem(f"{tpath}.nvlink_islands",
                            f"node type {tname!r}: NVLink islands {list(map(list, t.nvlink_islands))} must "
                            f"cover GPU indices 0..{t.gpus - 1} exactly once"))

    # -- nodes -----------------------------------------------------------------------------------
    node_index: dict[str, int] = {}
    node_path: dict[str, str] = {}
    rejected: set[str] = set()  # declared but unusable: reported once, not again as undeclared
    names: list[str] = []
    ntype: list[int] = []
    nstate: list[int] = []
    reasons: dict[int, str] = {}
    for n in spec.nodes:
        if n.name in node_index:
            err(Problem(n.path, f"duplicate node {n.name!r} (first declared at {node_path[n.name]})", line=n.line))
            continue
        if n.type not in type_idx:
            err(Problem(n.path, f"node {n.name!r} has unknown node type {n.type!r}", line=n.line))
            rejected.add(n.name)
            continue
        if n.state not in NODE_STATES:
            rejected.add(n.name)
            err(Problem(n.path, f"node {n.name!r} has unknown state {n.state!r} (one of {', '.join(NODE_STATES)})",
                        line=n.line))
            continue
        idx = len(names)
        node_index[n.name] = idx
        node_path[n.name] = n.path
        names.append(n.name)
        ntype.append(type_idx[n.type])
        nstate.append(NODE_STATES.index(n.state))
        if n.reason:
            reasons[idx] = n.reason

    # -- switches: names, parents, cycles, roots -----------------------------------------------------
    sw_index: dict[str, int] = {}
    for i, s in enumerate(spec.switches):
        if s.name in sw_index:
            err(Problem(s.path, f"duplicate switch name {s.name!r} (first at {spec.switches[sw_index[s.name]].path})",
                        line=s.line))
        else:
            sw_index[s.name] = i
    if not spec.switches:
        err(Problem("switches", "no switches: a fabric needs at least one leaf switch holding nodes"))
        return None
    nsw = len(spec.switches)
    parent = [-1] * nsw
    for i, s in enumerate(spec.switches):
        if s.parent is None:
            continue
        if s.parent == s.name:
            err(Problem(f"{s.path}.parent", f"switch {s.name!r} names itself as parent", line=s.line))
        elif s.parent not in sw_index:
            err(Problem(f"{s.path}.parent", f"switch {s.name!r} names unknown parent switch {s.parent!r}", line=s.line))
        else:
            parent[i] = sw_index[s.parent]
    children: list[list[int]] = [[] for _ in range(nsw)]
    for i, p in enumerate(parent):
        if p >= 0 and sw_index.get(spec.switches[i].name) == i:
            children[p].append(i)

    # cycles: walk up from each switch with a colour mark
    state = [0] * nsw  # 0 new, 1 on current walk, 2 done
    in_cycle = [False] * nsw
    for start in range(nsw):
        walk: list[int] = []
        x = start
        while x >= 0 and state[x] == 0:
            state[x] = 1
            walk.append(x)
            x = parent[x]
        if x >= 0 and state[x] == 1:
            cyc = walk[walk.index(x):]
            for c in cyc:
                in_cycle[c] = True
            chain = " -> ".join(spec.switches[c].name for c in cyc + [x])
            err(Problem(f"{spec.switches[x].path}.parent", f"cycle in the switch tree: {chain}",
                        line=spec.switches[x].line))
        for w in walk:
            state[w] = 2
    if any(in_cycle):
        return None

    # a switch with neither nodes nor children is warned about below and takes no part in the tree
    roots = [i for i in range(nsw) if parent[i] < 0 and sw_index.get(spec.switches[i].name) == i
             and (children[i] or spec.switches[i].nodes)]
    if len(roots) > 1:
        shown = ", ".join(repr(spec.switches[r].name) for r in roots[:10]) + (" ..." if len(roots) > 10 else "")
        err(Problem("switches", f"the switch tree has {len(roots)} roots ({shown}); leaves under different roots "
                                f"have no path to each other: give them a common parent"))

    # -- leaves, rails, node attachment ------------------------------------------------------------
    node_leaves: list[dict[int | None, int]] = [dict() for _ in names]
    leaf_nodes_of: list[list[int]] = [[] for _ in range(nsw)]
    for i, s in enumerate(spec.switches):
        if s.nodes and children[i]:
            err(Problem(s.path, f"switch {s.name!r} has both nodes and child switches; a leaf holds nodes only",
                        line=s.line))
        if s.rail is not None and (not s.nodes):
            err(Problem(f"{s.path}.rail", f"switch {s.name!r} has a rail but no nodes; rails belong to leaf switches",
                        line=s.line))
        if s.rail is not None and s.rail < 0:
            err(Problem(f"{s.path}.rail", f"switch {s.name!r}: rail {s.rail} must be 0 or more", line=s.line))
        if not s.nodes and not children[i]:
            problems.append(Problem(s.path, f"switch {s.name!r} has neither nodes nor child switches; ignored "
                                            f"for placement", severity="warning", line=s.line))
        seen_here: set[str] = set()
        for k, nname in enumerate(s.nodes):
            npath = f"{s.path}.nodes[{k}]"
            if nname in seen_here:
                err(Problem(npath, f"node {nname!r} is listed twice under switch {s.name!r}", line=s.line))
                continue
            seen_here.add(nname)
            ni = node_index.get(nname)
            if ni is None:
                if nname not in rejected:
                    err(Problem(npath, f"node {nname!r} under switch {s.name!r} is not declared in nodes",
                                line=s.line))
                continue
            other = node_leaves[ni].get(s.rail)
            if other is not None:
                rail = f" of rail {s.rail}" if s.rail is not None else ""
                err(Problem(npath, f"node {nname!r} is also under {spec.switches[other].name!r}: a node hangs from "
                                   f"one leaf{rail} only", line=s.line))
                continue
            node_leaves[ni][s.rail] = i
            leaf_nodes_of[i].append(ni)
    for ni, att in enumerate(node_leaves):
        if not att:
            err(Problem(node_path[names[ni]], f"node {names[ni]!r} is under no leaf switch"))
        elif None in att and len(att) > 1:
            rails = sorted(r for r in att if r is not None)
            err(Problem(node_path[names[ni]], f"node {names[ni]!r} hangs from a rail-less leaf "
                        f"{spec.switches[att[None]].name!r} and from rail leaves (rails {rails}); use one or the other"))

    # -- NVLink domains ------------------------------------------------------------------------------
    node_domain = np.full(len(names), -1, dtype=np.int32)
    dom_names: list[str] = []
    dom_seen: dict[str, str] = {}
    for d in spec.domains:
        if d.name in dom_seen:
            err(Problem(d.path, f"duplicate NVLink domain name {d.name!r} (first at {dom_seen[d.name]})"))
            continue
        dom_seen[d.name] = d.path
        di = len(dom_names)
        dom_names.append(d.name)
        for k, nname in enumerate(d.nodes):
            ni = node_index.get(nname)
            if ni is None:
                err(Problem(f"{d.path}.nodes[{k}]", f"NVLink domain {d.name!r} names unknown node {nname!r}"))
            elif node_domain[ni] >= 0:
                err(Problem(f"{d.path}.nodes[{k}]", f"node {nname!r} is already in NVLink domain "
                                                    f"{dom_names[node_domain[ni]]!r}"))
            else:
                node_domain[ni] = di
    if errors_in(problems):
        return None

    # -- switch tiers (Slurm's level: leaves 0, else 1 + max over children) ---------------------------
    tier = [0] * nsw
    order: list[int] = []  # post-order so children come first
    for r in roots:
        stack = [(r, False)]
        while stack:
            x, done = stack.pop()
            if done:
                order.append(x)
                continue
            stack.append((x, True))
            stack.extend((c, False) for c in children[x])
    for x in order:
        if children[x]:
            tier[x] = 1 + max(tier[c] for c in children[x])

    # -- placement leaves: scalable units = nodes whose leaf switches coincide ------------------------
    node_switches: list[tuple[int, ...]] = [
        tuple(att[r] for r in sorted(att, key=lambda r: -1 if r is None else r)) for att in node_leaves]
    # a node missing some rail leaves (a pulled cable, an adapter still at its default name) belongs to
    # the one unit whose leaves include all of its own: merged there, and said
    keys = set(node_switches)
    by_switch: dict[int, list[tuple[int, ...]]] = {}
    for k in keys:
        for sw in k:
            by_switch.setdefault(sw, []).append(k)
    merge: dict[tuple[int, ...], tuple[int, ...]] = {}
    for k in keys:
        sup = [o for o in by_switch[k[0]] if len(o) > len(k) and set(k) < set(o)]
        maximal = [o for o in sup if not any(set(o) < set(x) for x in sup)]
        if len(maximal) == 1:
            merge[k] = maximal[0]
    if merge:
        short = [names[i] for i, k in enumerate(node_switches) if k in merge]
        problems.append(Problem("switches", f"{len(short)} node(s) hang from fewer rail leaves than their peers "
                                            f"(missing cables or unnamed adapters) and join their peers' scalable "
                                            f"unit: {', '.join(short[:8])}{' …' if len(short) > 8 else ''}",
                                severity="warning"))
    unit_key = [merge.get(k, k) for k in node_switches]
    # units in the order their first leaf switch appears in the inventory (Slurm's switch-table order)
    su_keys: list[tuple[int, ...]] = sorted(set(unit_key), key=lambda k: (min(k), k))
    su_key_index = {k: i for i, k in enumerate(su_keys)}
    node_leaf = np.fromiter((su_key_index[k] for k in unit_key), dtype=np.int32, count=len(unit_key))
    # leaf switches split between units (a miswired rail) are worth a warning
    leaf_units: dict[int, set[int]] = {}
    for li, key in enumerate(su_keys):
        for s in key:
            leaf_units.setdefault(s, set()).add(li)
    for s, units in leaf_units.items():
        if len(units) > 1 and spec.switches[s].rail is not None:
            problems.append(Problem(spec.switches[s].path,
                                    f"leaf {spec.switches[s].name!r} serves nodes of {len(units)} scalable units "
                                    f"(their rail leaves differ): check the rail cabling", severity="warning"))

    # -- inner groups: merge logical switches that are parents of one unit's leaves -------------------
    uf = _UnionFind(nsw)
    for key in su_keys:
        # (every leaf has a parent here: a parentless leaf would be a second root, reported above)
        ps = [parent[s] for s in key if parent[s] >= 0]
        for p in ps[1:]:
            uf.union(ps[0], p)
    changed = True
    while changed:  # fixed point: a merged class's members' parents merge too
        changed = False
        classes: dict[int, list[int]] = {}
        for s in range(nsw):
            if children[s]:
                classes.setdefault(uf.find(s), []).append(s)
        for members in classes.values():
            ps = [parent[s] for s in members if parent[s] >= 0]
            for p in ps[1:]:
                changed |= uf.union(ps[0], p)

    n_leaves = len(su_keys)
    group_of_class: dict[int, int] = {}
    group_names: list[str] = []
    group_switches: list[tuple[int, ...]] = []
    used_names: set[str] = set()

    def unique(name: str, fallback: str) -> str:
        if not name or name in used_names:
            name = fallback
        while name in used_names:
            name += "_"
        used_names.add(name)
        return name

    # leaf names: the leaf switch itself, or the SU name given / derived from its rail leaves; when the
    # derived name is not unique across units, the unit is named after its first leaf
    derived: list[str] = []
    for key in su_keys:
        if len(key) == 1:
            derived.append(spec.switches[key[0]].name)
        else:
            given = {spec.switches[s].su for s in key if spec.switches[s].su}
            derived.append(given.pop() if len(given) == 1 else _common_name([spec.switches[s].name for s in key]))
    clash = {n for n in derived if derived.count(n) > 1}
    for li, key in enumerate(su_keys):
        nm = derived[li]
        if nm in clash or not nm:
            nm = "su-" + min(spec.switches[s].name for s in key)
        group_names.append(unique(nm, f"su{li + 1:04d}"))
        group_switches.append(key)
    inner = sorted({uf.find(s) for s in range(nsw) if children[s]})
    for cls in inner:
        members = tuple(s for s in range(nsw) if children[s] and uf.find(s) == cls)
        group_of_class[cls] = len(group_names)
        group_names.append(unique(spec.switches[members[0]].name, f"group{len(group_names)}"))
        group_switches.append(members)
    ng = len(group_names)
    group_parent = np.full(ng, -1, dtype=np.int32)
    for g in range(ng):
        ps = {parent[s] for s in group_switches[g] if parent[s] >= 0}
        if ps:
            group_parent[g] = group_of_class[uf.find(next(iter(ps)))]
    # a merge may close a loop between groups (a switch listed below its own parent's partner)
    for g in range(ng):
        seen_g: set[int] = set()
        x = g
        while x >= 0:
            if x in seen_g:
                names_in = [spec.switches[s].name for s in group_switches[x]]
                err(Problem("switches", f"the rail leaves of one unit hang from switches {names_in} of which one "
                                        f"is above another; rail planes must not nest"))
                return None
            seen_g.add(x)
            x = int(group_parent[x])
    group_level = np.zeros(ng, dtype=np.int8)
    kids: list[list[int]] = [[] for _ in range(ng)]
    for g in range(ng):
        if group_parent[g] >= 0:
            kids[int(group_parent[g])].append(g)

    def level_of(g: int) -> int:
        stack, out = [g], []
        while stack:
            x = stack.pop()
            out.append(x)
            stack.extend(kids[x])
        for x in reversed(out):
            group_level[x] = 0 if not kids[x] else 1 + max(int(group_level[c]) for c in kids[x])
        return int(group_level[g])

    for g in range(ng):
        if group_parent[g] < 0:
            level_of(g)
    # order inner groups by level (spines before cores), keeping file order within a level
    perm = sorted(range(ng), key=lambda g: (int(group_level[g]), g))
    new_pos = np.empty(ng, dtype=np.int32)
    new_pos[perm] = np.arange(ng, dtype=np.int32)
    group_names = [group_names[g] for g in perm]
    group_switches = [group_switches[g] for g in perm]
    group_level = group_level[perm]
    group_parent = np.where(group_parent[perm] >= 0, new_pos[np.maximum(group_parent[perm], 0)], -1).astype(np.int32)

    # NVLink domains must sit below one leaf
    for di, dname in enumerate(dom_names):
        leaves = {int(node_leaf[n]) for n in np.nonzero(node_domain == di)[0]}
        if len(leaves) > 1:
            err(Problem(spec.domains[di].path, f"NVLink domain {dname!r} spans leaves "
                                               f"{sorted(group_names[l] for l in leaves)}; a domain sits below one leaf"))
    if errors_in(problems):
        return None

    order_nodes = np.argsort(node_leaf, kind="stable").astype(np.int32)
    counts = np.bincount(node_leaf, minlength=n_leaves)
    ptr = np.zeros(n_leaves + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])

    switches = tuple(
        Switch(name=s.name, parent=parent[i], tier=tier[i], rail=s.rail,
               members=tuple(s.members) if s.members else (s.name,), link_speed=s.link_speed, su=s.su,
               nodes=tuple(leaf_nodes_of[i]), children=tuple(children[i]))
        for i, s in enumerate(spec.switches))
    types = tuple(spec.node_types[t] for t in type_names)
    ntype_a = np.asarray(ntype, dtype=np.int16)
    gpus_per_type = np.asarray([t.gpus for t in types], dtype=np.int16)
    return Fabric(
        name=spec.name,
        node_types=types,
        switches=switches,
        node_names=tuple(names),
        node_index=MappingProxyType(node_index),
        node_type=_frozen(ntype_a),
        node_gpus=_frozen(gpus_per_type[ntype_a] if len(ntype_a) else np.zeros(0, dtype=np.int16)),
        node_state=_frozen(np.asarray(nstate, dtype=np.int8)),
        node_reason=MappingProxyType(reasons),
        node_leaf=_frozen(node_leaf),
        node_domain=_frozen(node_domain),
        node_switches=tuple(node_switches),
        domain_names=tuple(dom_names),
        group_names=tuple(group_names),
        group_level=_frozen(group_level),
        group_parent=_frozen(group_parent),
        group_switches=tuple(group_switches),
        n_leaves=n_leaves,
        leaf_node_ptr=_frozen(ptr),
        leaf_nodes=_frozen(order_nodes),
        switch_index=MappingProxyType(sw_index),
    )
