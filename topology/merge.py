"""Logical switches from physical ones: co-parents of one class of children are one switch.

One rule, used by the placement tree (the parents of one scalable unit's rail leaves) and by the
topology.conf / ibnetdiscover importers (a fat-tree's redundant spines): union-find (networkx's) to a
fixed point, because once two switches merge, their parents serve one class of children too.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

from networkx.utils import UnionFind

K = TypeVar("K", bound=Hashable)


def merge_co_parents(uf: UnionFind, items: Iterable[K], parents: Callable[[K], list[K]]) -> UnionFind:
    """Union, until nothing changes, the parents of every class of `items` (classes as `uf` has them)."""
    members_of: list[K] = list(items)
    changed = True
    while changed:
        changed = False
        classes: dict[Hashable, list[K]] = {}
        for x in members_of:
            classes.setdefault(uf[x], []).append(x)
        for members in classes.values():
            ps = [p for m in members for p in parents(m)]
            for p in ps[1:]:
                if uf[ps[0]] != uf[p]:
                    uf.union(ps[0], p)
                    changed = True
    return uf
