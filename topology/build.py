"""`build_fabric`: the only way from a FabricSpec to a Fabric, as named passes.

  node_types      GPU counts and NVLink islands make sense
  nodes           names unique, types and states known
  switch_tree     names unique, parents known, no cycle
  attach_nodes    leaves hold nodes only, rails sane, each node under one leaf (per rail)
  nvlink_domains  each node in one domain at most
  (placement_tree.scalable_units, placement_tree.inner_groups: the placement tree)
  disjoint_trees  several trees: a warning (placement keeps within one)
  domains_in_leaves  a domain sits below one leaf
  degraded_links  each slow or narrow cable's ends known, reported (topology/links.py)
  known_locations each rack/U/serial names a node or switch
  index_arrays    the Fabric's arrays

Every pass appends to one problem list; the build stops after the pass that found an error, so a user
sees every problem of the earliest stage at once.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType

import numpy as np

from .fabric import MAX_GPUS_PER_NODE, Fabric, Switch, frozen
from .hostlists import name_problem
from .links import check_degraded_links
from .placement_tree import Groups, Units, inner_groups, scalable_units
from .problems import InventoryError, Problem, errors_in
from .spec import NODE_STATES, FabricSpec

MAX_SWITCH_TIERS = 16
MAX_LINK_SPEED = 10**9  # Slurm's LinkSpeed is a relative number; Gb/s from dumps are far below this
MAX_NODE_TYPES = 10_000  # node types are int16 indices


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


def _build(spec: FabricSpec, problems: list[Problem]) -> Fabric | None:
    type_idx = node_types(spec, problems)
    nodes = node_table(spec, type_idx, problems)
    tree = switch_tree(spec, problems)
    if tree is None:
        return None
    attached = attach_nodes(spec, tree, nodes, problems)
    domains = nvlink_domains(spec, nodes, problems)
    if errors_in(problems):
        return None
    units = scalable_units(spec, attached.node_switches, nodes.names, problems)
    groups = inner_groups(spec, tree.parent, tree.children, units.keys, problems)
    if groups is None:
        return None
    disjoint_trees(groups, problems)
    domains_in_leaves(spec, domains, units, groups, problems)
    behind = check_degraded_links(spec, nodes.index, {n for s in spec.switches for n in (s.name, *s.members)},
                                  problems)
    if errors_in(problems):
        return None
    known_locations(spec, nodes.index, problems)
    if errors_in(problems):
        return None
    fabric = index_arrays(spec, nodes, tree, attached, domains, units, groups)
    if spec.locations:
        fabric = replace(fabric, locations=MappingProxyType(dict(spec.locations)))
    if not spec.degraded_links:
        return fabric
    return replace(fabric, degraded_links=tuple(spec.degraded_links), node_degraded=frozen(behind))


def known_locations(spec: FabricSpec, node_index: dict[str, int], problems: list[Problem]) -> None:
    """Each location names a node or switch of the fabric."""
    switches = {n for s in spec.switches for n in (s.name, *s.members)}
    for name in spec.locations:
        if name not in node_index and name not in switches:
            problems.append(Problem(f"locations.{name}", f"names {name!r}, which is neither a node nor a switch of "
                                                         f"the fabric"))


# -- pass: node types -------------------------------------------------------------------------------------
def node_types(spec: FabricSpec, problems: list[Problem]) -> dict[str, int]:
    """Each type has GPUs, and its NVLink islands cover its GPU indices exactly once."""
    if len(spec.node_types) > MAX_NODE_TYPES:
        problems.append(Problem("node_types", f"{len(spec.node_types):,} node types; placer reads at most "
                                              f"{MAX_NODE_TYPES:,}"))
    for tname, t in spec.node_types.items():
        tpath = f"node_types.{tname}"
        if t.gpus < 1:
            problems.append(Problem(f"{tpath}.gpus", f"node type {tname!r} has {t.gpus} GPUs; a GPU node needs at "
                                                     f"least 1"))
        elif t.gpus > MAX_GPUS_PER_NODE:  # what placement can hold: `validate` must not pass what `plan` refuses
            problems.append(Problem(f"{tpath}.gpus", f"node type {tname!r} has {t.gpus} GPUs; placer supports at "
                                                     f"most {MAX_GPUS_PER_NODE} per node"))
        elif t.nvlink_islands:
            seen = sorted(g for isl in t.nvlink_islands for g in isl)
            if seen != list(range(t.gpus)):
                problems.append(Problem(f"{tpath}.nvlink_islands",
                                        f"node type {tname!r}: NVLink islands {list(map(list, t.nvlink_islands))} "
                                        f"must cover GPU indices 0..{t.gpus - 1} exactly once"))
    return {n: i for i, n in enumerate(spec.node_types)}


# -- pass: nodes ------------------------------------------------------------------------------------------
@dataclass
class NodeTable:
    names: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    path: dict[str, str] = field(default_factory=dict)
    type: list[int] = field(default_factory=list)
    state: list[int] = field(default_factory=list)
    reasons: dict[int, str] = field(default_factory=dict)
    rejected: set[str] = field(default_factory=set)  # declared but unusable: reported once, not again


def node_table(spec: FabricSpec, type_idx: dict[str, int], problems: list[Problem]) -> NodeTable:
    """Nodes by index; duplicates, unknown types and unknown states are errors."""
    t = NodeTable()
    for n in spec.nodes:
        if n.name in t.index:
            problems.append(Problem(n.path, f"duplicate node {n.name!r} (first declared at {t.path[n.name]})",
                                    line=n.line))
            continue
        if (why := name_problem(n.name)) is not None:  # what no hostlist or slurm.conf could carry
            problems.append(Problem(n.path, f"node name {why}", line=n.line))
            t.rejected.add(n.name)
            continue
        if n.type not in type_idx:
            problems.append(Problem(n.path, f"node {n.name!r} has unknown node type {n.type!r}", line=n.line))
            t.rejected.add(n.name)
            continue
        if n.state not in NODE_STATES:
            t.rejected.add(n.name)
            problems.append(Problem(n.path, f"node {n.name!r} has unknown state {n.state!r} (one of "
                                            f"{', '.join(NODE_STATES)})", line=n.line))
            continue
        idx = len(t.names)
        t.index[n.name] = idx
        t.path[n.name] = n.path
        t.names.append(n.name)
        t.type.append(type_idx[n.type])
        t.state.append(NODE_STATES.index(n.state))
        if n.reason:
            t.reasons[idx] = n.reason
    return t


# -- pass: the switch tree -----------------------------------------------------------------------------------
@dataclass
class SwitchTree:
    index: dict[str, int]  # first switch of each name
    parent: list[int]  # -1 at a root
    children: list[list[int]]
    tier: list[int]  # Slurm's level: leaves 0, else 1 + the highest child


def switch_tree(spec: FabricSpec, problems: list[Problem]) -> SwitchTree | None:
    """Names, parents, cycles and roots; None when the tree cannot be walked (no switches, a cycle)."""
    index = _switch_index(spec, problems)
    if not spec.switches:
        problems.append(Problem("switches", "no switches: a fabric needs at least one leaf switch holding nodes"))
        return None
    parent = _parents(spec, index, problems)
    children: list[list[int]] = [[] for _ in spec.switches]
    for i, p in enumerate(parent):
        if p >= 0 and index.get(spec.switches[i].name) == i:
            children[p].append(i)
    if _cycles(spec, parent, problems):
        return None
    roots = [i for i in range(len(parent)) if parent[i] < 0 and index.get(spec.switches[i].name) == i
             and (children[i] or spec.switches[i].nodes)]  # a switch with neither is warned about later
    tiers = _tiers(children, roots)
    if max(tiers, default=0) >= MAX_SWITCH_TIERS:  # levels are int8 arrays; real fat-trees have 2-4 tiers
        problems.append(Problem("switches", f"the switch tree is {max(tiers) + 1} tiers deep; placer reads at most "
                                            f"{MAX_SWITCH_TIERS}"))
        return None
    for s in spec.switches:
        if s.link_speed is not None and not 0 < s.link_speed <= MAX_LINK_SPEED:
            problems.append(Problem(f"{s.path}.link_speed", f"link speed {s.link_speed} is not between 1 and "
                                                            f"{MAX_LINK_SPEED:,}", line=s.line))
    return SwitchTree(index, parent, children, tiers)


def _switch_index(spec: FabricSpec, problems: list[Problem]) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, s in enumerate(spec.switches):
        for name in (s.name, *s.members):
            if (why := name_problem(name)) is not None:
                problems.append(Problem(s.path, f"switch name {why}", line=s.line))
        if s.name in index:
            problems.append(Problem(s.path, f"duplicate switch name {s.name!r} (first at "
                                            f"{spec.switches[index[s.name]].path})", line=s.line))
        else:
            index[s.name] = i
    return index


def _parents(spec: FabricSpec, index: dict[str, int], problems: list[Problem]) -> list[int]:
    parent = [-1] * len(spec.switches)
    for i, s in enumerate(spec.switches):
        if s.parent is None:
            continue
        if s.parent == s.name:
            problems.append(Problem(f"{s.path}.parent", f"switch {s.name!r} names itself as parent", line=s.line))
        elif s.parent not in index:
            problems.append(Problem(f"{s.path}.parent", f"switch {s.name!r} names unknown parent switch "
                                                        f"{s.parent!r}", line=s.line))
        else:
            parent[i] = index[s.parent]
    return parent


def _cycles(spec: FabricSpec, parent: list[int], problems: list[Problem]) -> bool:
    """Walk up from each switch with a colour mark; report each cycle once."""
    state = [0] * len(parent)  # 0 new, 1 on the current walk, 2 done
    found = False
    for start in range(len(parent)):
        walk: list[int] = []
        x = start
        while x >= 0 and state[x] == 0:
            state[x] = 1
            walk.append(x)
            x = parent[x]
        if x >= 0 and state[x] == 1:
            found = True
            cyc = walk[walk.index(x):]
            chain = " -> ".join(spec.switches[c].name for c in cyc + [x])
            problems.append(Problem(f"{spec.switches[x].path}.parent", f"cycle in the switch tree: {chain}",
                                    line=spec.switches[x].line))
        for w in walk:
            state[w] = 2
    return found


def _tiers(children: list[list[int]], roots: list[int]) -> list[int]:
    tier = [0] * len(children)
    order: list[int] = []  # post-order: children first
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
    return tier


# -- pass: nodes under leaves, rails ---------------------------------------------------------------------
@dataclass
class Attachment:
    node_switches: list[tuple[int, ...]]  # per node: its leaf switches, by rail (rail-less first)
    leaf_nodes_of: list[list[int]]  # per switch: the nodes directly under it


def attach_nodes(spec: FabricSpec, tree: SwitchTree, nodes: NodeTable, problems: list[Problem]) -> Attachment:
    """Each node hangs from one leaf (per rail); leaves hold nodes only; rails belong to leaves."""
    node_leaves: list[dict[int | None, int]] = [{} for _ in nodes.names]
    leaf_nodes_of: list[list[int]] = [[] for _ in spec.switches]
    for i, s in enumerate(spec.switches):
        _check_leaf(spec, i, tree, problems)
        seen_here: set[str] = set()
        for k, nname in enumerate(s.nodes):
            npath = f"{s.path}.nodes[{k}]"
            if nname in seen_here:
                problems.append(Problem(npath, f"node {nname!r} is listed twice under switch {s.name!r}", line=s.line))
                continue
            seen_here.add(nname)
            ni = nodes.index.get(nname)
            if ni is None:
                if nname not in nodes.rejected:
                    problems.append(Problem(npath, f"node {nname!r} under switch {s.name!r} is not declared in nodes",
                                            line=s.line))
                continue
            other = node_leaves[ni].get(s.rail)
            if other is not None:
                rail = f" of rail {s.rail}" if s.rail is not None else ""
                problems.append(Problem(npath, f"node {nname!r} is also under {spec.switches[other].name!r}: a node "
                                               f"hangs from one leaf{rail} only", line=s.line))
                continue
            node_leaves[ni][s.rail] = i
            leaf_nodes_of[i].append(ni)
    _check_nodes_attached(spec, nodes, node_leaves, problems)
    node_switches = [tuple(att[r] for r in sorted(att, key=lambda r: -1 if r is None else r)) for att in node_leaves]
    return Attachment(node_switches, leaf_nodes_of)


def _check_leaf(spec: FabricSpec, i: int, tree: SwitchTree, problems: list[Problem]) -> None:
    s = spec.switches[i]
    if s.nodes and tree.children[i]:
        problems.append(Problem(s.path, f"switch {s.name!r} has both nodes and child switches; a leaf holds nodes "
                                        f"only", line=s.line))
    if s.rail is not None and (not s.nodes):
        problems.append(Problem(f"{s.path}.rail", f"switch {s.name!r} has a rail but no nodes; rails belong to leaf "
                                                  f"switches", line=s.line))
    if s.rail is not None and s.rail < 0:
        problems.append(Problem(f"{s.path}.rail", f"switch {s.name!r}: rail {s.rail} must be 0 or more", line=s.line))
    if not s.nodes and not tree.children[i]:
        problems.append(Problem(s.path, f"switch {s.name!r} has neither nodes nor child switches; ignored for "
                                        f"placement", severity="warning", line=s.line))


def _check_nodes_attached(spec: FabricSpec, nodes: NodeTable, node_leaves: list[dict[int | None, int]],
                          problems: list[Problem]) -> None:
    for ni, att in enumerate(node_leaves):
        name = nodes.names[ni]
        if not att:
            problems.append(Problem(nodes.path[name], f"node {name!r} is under no leaf switch"))
        elif None in att and len(att) > 1:
            rails = sorted(r for r in att if r is not None)
            problems.append(Problem(nodes.path[name], f"node {name!r} hangs from a rail-less leaf "
                                                      f"{spec.switches[att[None]].name!r} and from rail leaves "
                                                      f"(rails {rails}); use one or the other"))


# -- pass: NVLink domains ------------------------------------------------------------------------------------
@dataclass
class Domains:
    names: list[str]
    node_domain: np.ndarray  # int32: domain index or -1


def nvlink_domains(spec: FabricSpec, nodes: NodeTable, problems: list[Problem]) -> Domains:
    """Domains have unique names, name known nodes, and hold each node once."""
    node_domain = np.full(len(nodes.names), -1, dtype=np.int32)
    names: list[str] = []
    seen: dict[str, str] = {}
    for d in spec.domains:
        if d.name in seen:
            problems.append(Problem(d.path, f"duplicate NVLink domain name {d.name!r} (first at {seen[d.name]})"))
            continue
        seen[d.name] = d.path
        di = len(names)
        names.append(d.name)
        for k, nname in enumerate(d.nodes):
            ni = nodes.index.get(nname)
            if ni is None:
                problems.append(Problem(f"{d.path}.nodes[{k}]", f"NVLink domain {d.name!r} names unknown node "
                                                                f"{nname!r}"))
            elif node_domain[ni] >= 0:
                problems.append(Problem(f"{d.path}.nodes[{k}]", f"node {nname!r} is already in NVLink domain "
                                                                f"{names[node_domain[ni]]!r}"))
            else:
                node_domain[ni] = di
    return Domains(names, node_domain)


def disjoint_trees(groups: Groups, problems: list[Problem]) -> None:
    """Several placement trees (no common switch, rail planes already merged): Slurm reads such a
    topology.conf, warns, and never spans them; so does placer."""
    roots = [groups.names[g] for g in range(len(groups.names)) if groups.parent[g] < 0]
    if len(roots) > 1:
        shown = ", ".join(repr(r) for r in roots[:5]) + (f" and {len(roots) - 5} more" if len(roots) > 5 else "")
        problems.append(Problem("switches", f"{len(roots)} disjoint trees with no common switch (under {shown}): "
                                            f"a job is placed within one tree, never across them (as Slurm does); "
                                            f"give them a common parent (or import with --add-root NAME) for one "
                                            f"tree", "warning"))


def domains_in_leaves(spec: FabricSpec, domains: Domains, units: Units, groups: Groups,
                      problems: list[Problem]) -> None:
    """An NVLink domain sits below one placement leaf."""
    for di, dname in enumerate(domains.names):
        leaves = {int(units.node_leaf[n]) for n in np.nonzero(domains.node_domain == di)[0]}
        if len(leaves) > 1:
            problems.append(Problem(spec.domains[di].path, f"NVLink domain {dname!r} spans leaves "
                                                           f"{sorted(groups.names[l] for l in leaves)}; a domain "
                                                           f"sits below one leaf"))


# -- pass: the Fabric's arrays -------------------------------------------------------------------------------
def index_arrays(spec: FabricSpec, nodes: NodeTable, tree: SwitchTree, attached: Attachment, domains: Domains,
                 units: Units, groups: Groups) -> Fabric:
    n_leaves = len(units.keys)
    node_leaf = units.node_leaf
    order_nodes = np.argsort(node_leaf, kind="stable").astype(np.int32)
    ptr = np.zeros(n_leaves + 1, dtype=np.int64)
    np.cumsum(np.bincount(node_leaf, minlength=n_leaves), out=ptr[1:])
    switches = tuple(
        Switch(name=s.name, parent=tree.parent[i], tier=tree.tier[i], rail=s.rail,
               members=tuple(s.members) if s.members else (s.name,), link_speed=s.link_speed, su=s.su,
               nodes=tuple(attached.leaf_nodes_of[i]), children=tuple(tree.children[i]))
        for i, s in enumerate(spec.switches))
    types = tuple(spec.node_types.values())
    ntype = np.asarray(nodes.type, dtype=np.int16)
    gpus_per_type = np.asarray([t.gpus for t in types], dtype=np.int16)
    return Fabric(
        name=spec.name,
        node_types=types,
        switches=switches,
        node_names=tuple(nodes.names),
        node_index=MappingProxyType(nodes.index),
        node_type=frozen(ntype),
        node_gpus=frozen(gpus_per_type[ntype] if len(ntype) else np.zeros(0, dtype=np.int16)),
        node_state=frozen(np.asarray(nodes.state, dtype=np.int8)),
        node_reason=MappingProxyType(nodes.reasons),
        node_leaf=frozen(node_leaf),
        node_domain=frozen(domains.node_domain),
        node_switches=tuple(attached.node_switches),
        domain_names=tuple(domains.names),
        group_names=tuple(groups.names),
        group_level=frozen(groups.level),
        group_parent=frozen(groups.parent),
        group_switches=tuple(groups.switches),
        n_leaves=n_leaves,
        leaf_node_ptr=frozen(ptr),
        leaf_nodes=frozen(order_nodes),
        switch_index=MappingProxyType(tree.index),
    )
