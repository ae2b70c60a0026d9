"""A fabric restricted to some of its nodes (a lab of the first N nodes, a partition): same tree, emptied
switches dropped."""
from __future__ import annotations

from collections.abc import Iterable

from .build import build_fabric
from .fabric import Fabric, NodeState
from .problems import RequestError
from .spec import DomainSpec, FabricSpec, NodeSpec, SwitchSpec


def fabric_to_spec(fabric: Fabric, keep: set[int] | None = None) -> FabricSpec:
    keep = set(range(fabric.n_nodes)) if keep is None else keep
    spec = FabricSpec(name=fabric.name, node_types={t.name: t for t in fabric.node_types})
    states = [s.name.lower() for s in NodeState]
    for i in sorted(keep):
        spec.nodes.append(NodeSpec(fabric.node_names[i], fabric.node_names[i],
                                   fabric.node_types[int(fabric.node_type[i])].name,
                                   states[int(fabric.node_state[i])], fabric.node_reason.get(i, "")))
    alive = [bool(set(s.nodes) & keep) for s in fabric.switches]
    changed = True
    while changed:  # an inner switch lives while one of its children does
        changed = False
        for i, s in enumerate(fabric.switches):
            if not alive[i] and s.children and any(alive[c] for c in s.children):
                alive[i] = changed = True
    for i, s in enumerate(fabric.switches):
        if not alive[i]:
            continue
        parent = fabric.switches[s.parent].name if s.parent >= 0 else None
        spec.switches.append(SwitchSpec(s.name, s.name, parent=parent, rail=s.rail,
                                        nodes=[fabric.node_names[n] for n in s.nodes if n in keep],
                                        members=list(s.members) if s.members != (s.name,) else [],
                                        link_speed=s.link_speed, su=s.su))
    for d, name in enumerate(fabric.domain_names):
        members = [fabric.node_names[n] for n in range(fabric.n_nodes) if fabric.node_domain[n] == d and n in keep]
        if members:
            spec.domains.append(DomainSpec(name, name, members))
    names = {x.name for x in spec.nodes} | {n for s in spec.switches for n in (s.name, *s.members)}
    spec.degraded_links = [ln for ln in fabric.degraded_links if ln.a in names and ln.b in names]
    spec.locations = {n: loc for n, loc in fabric.locations.items() if n in names}
    return spec


def subset(fabric: Fabric, nodes: Iterable[int]) -> Fabric:
    keep = set(nodes)
    if not keep:
        raise RequestError("a fabric needs at least one node")
    sub, _ = build_fabric(fabric_to_spec(fabric, keep), f"subset of {fabric.name}")
    return sub


def first_nodes(fabric: Fabric, count: int) -> Fabric:
    """The first `count` nodes in node order, under the same tree."""
    if count < 1:
        raise RequestError(f"--nodes must be at least 1, got {count}")
    if count >= fabric.n_nodes:
        return fabric
    return subset(fabric, range(count))
