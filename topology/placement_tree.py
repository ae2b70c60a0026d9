"""The placement tree, derived from the switch tree: its leaves are scalable units, its inner groups
logical switches merged where they serve the same units.

Two passes of `build_fabric`:
  scalable_units  rails collapsed: nodes whose rail leaves coincide form one unit (a plain leaf switch
                  where there are no rails); a node missing some rail leaves joins the one unit whose
                  leaves include all of its own;
  inner_groups    the parents of one unit's rail leaves are one group (a fixed point: merged groups'
                  parents merge too), named, levelled and ordered as Slurm's switch table is.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from networkx.utils import UnionFind

from .merge import merge_co_parents
from .problems import Problem
from .spec import FabricSpec

_SEPARATORS = "-_.:"


@dataclass(frozen=True)
class Units:
    """Scalable units: each is the tuple of leaf switches (by rail) its nodes hang from."""

    keys: list[tuple[int, ...]]  # in the order their first leaf switch appears in the inventory
    node_leaf: np.ndarray  # int32: the unit of each node


@dataclass(frozen=True)
class Groups:
    """The placement tree: leaves (units) are groups 0..n_leaves-1, then inner groups by level."""

    names: list[str]
    switches: list[tuple[int, ...]]  # the inventory switches each group stands for
    parent: np.ndarray  # int32, -1 at the root
    level: np.ndarray  # int8: leaves 0, else 1 + the highest child


def common_name(names: list[str]) -> str:
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


# -- pass: rails collapsed into scalable units ---------------------------------------------------------
def scalable_units(spec: FabricSpec, node_switches: list[tuple[int, ...]], names: list[str],
                   problems: list[Problem]) -> Units:
    """Nodes whose leaf switches coincide form one unit; short nodes merge into their peers' unit."""
    merge = _short_node_merges(node_switches)
    if merge:
        short = [names[i] for i, k in enumerate(node_switches) if k in merge]
        problems.append(Problem("switches", f"{len(short)} node(s) hang from fewer rail leaves than their peers "
                                            f"(missing cables or unnamed adapters) and join their peers' scalable "
                                            f"unit: {', '.join(short[:8])}{' …' if len(short) > 8 else ''}",
                                severity="warning"))
    unit_key = [merge.get(k, k) for k in node_switches]
    # units in the order their first leaf switch appears in the inventory (Slurm's switch-table order)
    keys: list[tuple[int, ...]] = sorted(set(unit_key), key=lambda k: (min(k), k))
    key_index = {k: i for i, k in enumerate(keys)}
    node_leaf = np.fromiter((key_index[k] for k in unit_key), dtype=np.int32, count=len(unit_key))
    _warn_split_rail_leaves(spec, keys, problems)
    return Units(keys, node_leaf)


def _short_node_merges(node_switches: list[tuple[int, ...]]) -> dict[tuple[int, ...], tuple[int, ...]]:
    """A node missing some rail leaves (a pulled cable, an adapter still at its default name) belongs to
    the one unit whose leaves include all of its own."""
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
    return merge


def _warn_split_rail_leaves(spec: FabricSpec, keys: list[tuple[int, ...]], problems: list[Problem]) -> None:
    """Leaf switches split between units (a miswired rail) are worth a warning."""
    leaf_units: dict[int, set[int]] = {}
    for li, key in enumerate(keys):
        for s in key:
            leaf_units.setdefault(s, set()).add(li)
    for s, units in leaf_units.items():
        if len(units) > 1 and spec.switches[s].rail is not None:
            problems.append(Problem(spec.switches[s].path,
                                    f"leaf {spec.switches[s].name!r} serves nodes of {len(units)} scalable units "
                                    f"(their rail leaves differ): check the rail cabling", severity="warning"))


# -- pass: inner groups ------------------------------------------------------------------------------------
def inner_groups(spec: FabricSpec, parent: list[int], children: list[list[int]], keys: list[tuple[int, ...]],
                 problems: list[Problem]) -> Groups | None:
    """Merge the logical switches above each unit into groups; None (with an error) when rail planes nest."""
    nsw = len(spec.switches)
    uf = _merged_parents(parent, children, keys)
    classes: dict[object, list[int]] = {}
    for s in range(nsw):
        if children[s]:
            classes.setdefault(uf[s], []).append(s)
    # a class is known by its lowest switch index (the inventory order of its first member)
    inner = sorted((tuple(members) for members in classes.values()), key=lambda m: m[0])
    names = _group_names(spec, keys, inner)
    switches: list[tuple[int, ...]] = list(keys) + inner
    group_of_class = {uf[members[0]]: len(keys) + i for i, members in enumerate(inner)}
    gparent = np.full(len(names), -1, dtype=np.int32)
    for g, members in enumerate(switches):
        ps = {parent[s] for s in members if parent[s] >= 0}
        if ps:
            gparent[g] = group_of_class[uf[next(iter(ps))]]
    if not _acyclic(spec, gparent, switches, problems):
        return None
    return _ordered_by_level(names, switches, gparent)


def _merged_parents(parent: list[int], children: list[list[int]], keys: list[tuple[int, ...]]) -> UnionFind:
    """The parents of one unit's leaves are one group; then merged groups' parents merge too."""
    nsw = len(parent)
    uf = UnionFind(range(nsw))
    for key in keys:
        # (every leaf has a parent here: a parentless leaf would be a second root, reported earlier)
        ps = [parent[s] for s in key if parent[s] >= 0]
        for p in ps[1:]:
            uf.union(ps[0], p)
    return merge_co_parents(uf, [s for s in range(nsw) if children[s]],
                            lambda s: [parent[s]] if parent[s] >= 0 else [])


def _group_names(spec: FabricSpec, keys: list[tuple[int, ...]], inner: list[tuple[int, ...]]) -> list[str]:
    """Leaf names: the leaf switch itself, or the SU name given / derived from its rail leaves (the unit
    is named after its first leaf when the derived name is not unique); inner groups: their first switch."""
    used: set[str] = set()

    def unique(name: str, fallback: str) -> str:
        if not name or name in used:
            name = fallback
        while name in used:
            name += "_"
        used.add(name)
        return name

    derived: list[str] = []
    for key in keys:
        if len(key) == 1:
            derived.append(spec.switches[key[0]].name)
        else:
            given = sorted({su for s in key if (su := spec.switches[s].su)})
            derived.append(given[0] if len(given) == 1 else common_name([spec.switches[s].name for s in key]))
    clash = {n for n in derived if derived.count(n) > 1}
    names: list[str] = []
    for li, key in enumerate(keys):
        nm = derived[li]
        if nm in clash or not nm:
            nm = "su-" + min(spec.switches[s].name for s in key)
        names.append(unique(nm, f"su{li + 1:04d}"))
    for members in inner:
        names.append(unique(spec.switches[members[0]].name, f"group{len(names)}"))
    return names


def _acyclic(spec: FabricSpec, gparent: np.ndarray, switches: list[tuple[int, ...]],
             problems: list[Problem]) -> bool:
    """A merge may close a loop between groups (a switch listed below its own parent's partner)."""
    for g in range(len(gparent)):
        seen: set[int] = set()
        x = g
        while x >= 0:
            if x in seen:
                names_in = [spec.switches[s].name for s in switches[x]]
                problems.append(Problem("switches", f"the rail leaves of one unit hang from switches {names_in} of "
                                                    f"which one is above another; rail planes must not nest"))
                return False
            seen.add(x)
            x = int(gparent[x])
    return True


def _ordered_by_level(names: list[str], switches: list[tuple[int, ...]], gparent: np.ndarray) -> Groups:
    """Levels (leaves 0, else 1 + the highest child); inner groups ordered by level (spines before cores),
    keeping file order within a level."""
    ng = len(names)
    level = np.zeros(ng, dtype=np.int8)
    kids: list[list[int]] = [[] for _ in range(ng)]
    for g in range(ng):
        if gparent[g] >= 0:
            kids[int(gparent[g])].append(g)
    for root in (g for g in range(ng) if gparent[g] < 0):
        stack, order = [root], []
        while stack:
            x = stack.pop()
            order.append(x)
            stack.extend(kids[x])
        for x in reversed(order):
            level[x] = 0 if not kids[x] else 1 + max(int(level[c]) for c in kids[x])
    perm = sorted(range(ng), key=lambda g: (int(level[g]), g))
    new_pos = np.empty(ng, dtype=np.int32)
    new_pos[perm] = np.arange(ng, dtype=np.int32)
    parent = np.where(gparent[perm] >= 0, new_pos[np.maximum(gparent[perm], 0)], -1).astype(np.int32)
    return Groups([names[g] for g in perm], [switches[g] for g in perm], parent, level[perm])
