"""The cost of a placement: one formula, its weights, and nothing else (docs/design.md, "Objective").

    cost = A·(leaves − 1) + B·tier + CF·(2·broken_nodes + 2·broken_leaves + 4·broken_groups + partial) + leftover

Leaves first (A), then tier-weighted extra groups (B: Σ over levels t ≥ 1 of t·(groups at t − 1)),
then fragmentation events (CF: a whole free node, leaf or group broken; a leaf or node left partly
used), then leftover free units in what the job touches. The weights are lexicographic: each is larger
than everything the terms after it can add up to on this fabric. The terms are counted by the caller
(exact scans over numpy arrays, the greedy, CP-SAT's linear expressions, the validator's own picture);
they all combine them here, so they cannot disagree about the formula.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from topology import Fabric


@dataclass(frozen=True)
class CostWeights:
    A: int  # per extra leaf
    B: int  # per tier-weighted extra group
    CF: int  # per fragmentation event


def cost_weights(fabric: Fabric) -> CostWeights:
    """Lexicographic weights for this fabric: no sum of later terms reaches one unit of an earlier one."""
    nl, ng = fabric.n_leaves, fabric.n_groups
    n = max(fabric.n_nodes, 1)
    max_units = max(n, int(fabric.node_gpus.max()) if fabric.n_nodes else 1)
    cf = max_units + 1
    f_max = cf * (3 * nl + 4 * ng + 2) + max_units
    b = f_max + 1
    tier_max = sum(int(fabric.group_level[g]) for g in range(nl, ng))
    return CostWeights(b * (tier_max + 1), b, cf)


def placement_cost(w: CostWeights, *, leaves: Any, tier: Any, broken_nodes: Any = 0, broken_leaves: Any = 0,
                   broken_groups: Any = 0, partial: Any = 0, leftover: Any = 0) -> Any:
    """The formula above, for ints, numpy arrays (one candidate per element) or CP-SAT linear expressions."""
    frag = 2 * broken_nodes + 2 * broken_leaves + 4 * broken_groups + partial
    return w.A * (leaves - 1) + w.B * tier + w.CF * frag + leftover
