"""The canonical fabric model: immutable, index-based, arrays for hot paths.

Invariant (as in NVIDIA topograph): importers produce a FabricSpec, `build_fabric` is the only way
to a Fabric (topology/build.py, as named passes), exporters only translate a Fabric. The placement
tree ("groups", derived in topology/placement_tree.py): its leaves are scalable units (nodes whose
rail leaves coincide; a plain leaf switch when there are no rails), its inner groups are logical
switches merged where they serve the same children.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType

import numpy as np

from .spec import LinkSpec, Location, NodeType


class NodeState(IntEnum):
    UP = 0
    DRAIN = 1
    DOWN = 2



MAX_GPUS_PER_NODE = 64  # GPU sets are bitmasks in a uint64 (topology/state.py)

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


def frozen(a: np.ndarray) -> np.ndarray:
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
    degraded_links: tuple[LinkSpec, ...] = ()  # cables slower or narrower than their peers
    node_degraded: np.ndarray | None = None  # bool per node: behind a degraded link (None: none known)
    locations: Mapping[str, Location] = field(default_factory=lambda: MappingProxyType({}))  # name -> rack, U...

    def where(self, name: str) -> str:
        """' (rack A01 U12 SN X)' for a name whose location is known, else ''."""
        loc = self.locations.get(name)
        return f" ({loc.text()})" if loc is not None and loc.text() else ""

    def behind_degraded(self) -> np.ndarray:
        """Per node: its own cable is degraded."""
        if self.node_degraded is None:
            return np.zeros(self.n_nodes, dtype=bool)
        return self.node_degraded

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


