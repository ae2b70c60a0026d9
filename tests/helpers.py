"""Helpers for tests: fabric signatures and seeded random fabrics."""
from __future__ import annotations

import random

from topology import Fabric
from topology.spec import DomainSpec, FabricSpec, NodeSpec, NodeType, SwitchSpec


def placement_signature(f: Fabric) -> dict:
    """Everything placement depends on, by name: nodes (order, GPUs, model, features, state), the tree."""
    leaves = {}
    for leaf in range(f.n_leaves):
        leaves[f.group_names[leaf]] = sorted(f.node_names[int(n)] for n in f.nodes_of_leaf(leaf))
    return {
        "nodes": [(f.node_names[i], int(f.node_gpus[i]), f.node_types[int(f.node_type[i])].gpu_model,
                   f.node_types[int(f.node_type[i])].features, int(f.node_state[i]), f.node_reason.get(i, ""))
                  for i in range(f.n_nodes)],
        "leaves": leaves,
        "tree": sorted((f.group_names[g], int(f.group_level[g]),
                        f.group_names[int(f.group_parent[g])] if f.group_parent[g] >= 0 else None)
                       for g in range(f.n_groups)),
    }


def random_spec(seed: int, rails: bool | None = None) -> FabricSpec:
    """A random valid fabric: 1-3 inner tiers, uneven leaves, optional rails, some drained nodes."""
    rng = random.Random(seed)
    use_rails = rng.random() < 0.4 if rails is None else rails
    spec = FabricSpec(name=f"random{seed}")
    spec.node_types["t8"] = NodeType("t8", 8, "h100", ("h100",))
    spec.node_types["t4"] = NodeType("t4", 4, "a100", ("a100", "ib"), ((0, 1), (2, 3)))
    depth = rng.randint(1, 3)
    spec.switches.append(SwitchSpec("root", "root"))
    frontier = ["root"]
    for lv in range(depth - 1):
        nxt = []
        for p in frontier:
            for k in range(rng.randint(1, 3)):
                nm = f"{p}-s{k}" if p != "root" else f"s{lv}{k}"
                spec.switches.append(SwitchSpec(nm, nm, parent=p, link_speed=rng.choice([None, 100, 400])))
                nxt.append(nm)
        frontier = nxt
    n = 0
    for p in frontier:
        for k in range(rng.randint(1, 3)):
            count = rng.randint(1, 6)
            nodes = [f"n{n + i + 1:04d}" for i in range(count)]
            n += count
            su = f"{p}-l{k}"
            if use_rails:
                for r in range(2):
                    spec.switches.append(SwitchSpec(f"{su}-r{r}", f"{su}-r{r}", parent=p, rail=r, nodes=nodes, su=su))
            else:
                spec.switches.append(SwitchSpec(su, su, parent=p, nodes=nodes))
            for nm in nodes:
                state = rng.choice(["up"] * 8 + ["drain", "down"])
                spec.nodes.append(NodeSpec(nm, nm, rng.choice(["t8", "t8", "t4"]), state,
                                           "maintenance" if state != "up" else ""))
    if not use_rails and rng.random() < 0.5:
        leaf = next(s for s in spec.switches if s.nodes)
        spec.domains.append(DomainSpec("dom1", "dom1", leaf.nodes[: max(1, len(leaf.nodes) // 2)]))
    return spec
