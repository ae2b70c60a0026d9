"""The CP-SAT model for choosing how many whole nodes to take from each leaf of a subtree.

Follows the or-tools samples: data -> model -> variables -> constraints -> objective -> solve -> read.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ortools.sat.python import cp_model

from topology import ClusterState

from .cost import placement_cost
from .index import FabricIndex
from .types import PlannerConfig

STATUS = {cp_model.OPTIMAL: "OPTIMAL", cp_model.FEASIBLE: "FEASIBLE", cp_model.INFEASIBLE: "INFEASIBLE",
          cp_model.MODEL_INVALID: "MODEL_INVALID", cp_model.UNKNOWN: "UNKNOWN"}


@dataclass
class SolveResult:
    status: str
    take: dict[int, int] | None
    model_proto: str | None = None


@dataclass
class _Vars:
    x: dict[int, cp_model.IntVar]  # nodes taken per leaf
    y: dict[int, cp_model.IntVar]  # leaf used
    full: dict[int, cp_model.IntVar]  # leaf emptied of its free nodes
    z: dict[int, cp_model.IntVar]  # inner group used
    members: dict[int, list[int]]  # inner group -> its candidate leaves
    emptied_g: dict[int, cp_model.IntVar] = field(default_factory=dict)  # whole free group taken whole


def solve_leaf_choice(ix: FabricIndex, state: ClusterState, counts: np.ndarray, leaves: np.ndarray, need: int,
                      max_switches: int | None, hint: dict[int, int], time_limit_s: float,
                      cfg: PlannerConfig) -> SolveResult:
    # -- data
    free = state.group_free_nodes
    whole_free = state.group_free_nodes == ix.group_nodes
    cand = [int(l) for l in leaves]
    model = cp_model.CpModel()
    v = _variables(ix, model, counts, free, cand)
    x, y, full, z = v.x, v.y, v.full, v.z

    # -- constraints
    # the job gets exactly its nodes
    model.add(sum(x.values()) == need)
    # a leaf is used iff nodes are taken from it
    for l in cand:
        model.add(x[l] <= int(counts[l]) * y[l])
        model.add(x[l] >= y[l])
    # "emptied" only when every free node of the leaf is taken
    for l, f in full.items():
        model.add(x[l] == int(free[l])).only_enforce_if(f)
        model.add_implication(f, y[l])
    # a used leaf uses its ancestors
    for g, ls in v.members.items():
        for l in ls:
            model.add_implication(y[l], z[g])
    # like sbatch --switches: at most this many leaves
    if max_switches is not None:
        model.add(sum(y.values()) <= max_switches)
    # a whole free inner group counts as broken unless the job takes all of it
    broken_g = []
    for g, ls in v.members.items():
        if whole_free[g]:
            fg = model.new_bool_var(f"emptied[{ix.fabric.group_names[g]}]")
            v.emptied_g[g] = fg
            if sum(int(counts[l]) for l in ls) >= ix.group_nodes[g]:
                model.add(sum(x[l] for l in ls) == int(ix.group_nodes[g])).only_enforce_if(fg)
            else:
                model.add(fg == 0)
            model.add_implication(fg, z[g])
            broken_g.append(z[g] - fg)

    # -- objective (placer/cost.py): leaves, tier-weighted groups, fragmentation, leftover
    partial = [y[l] - full[l] if l in full else y[l] for l in cand]
    broken_l = [p for l, p in zip(cand, partial) if whole_free[l]]
    tier = [int(ix.fabric.group_level[g]) * z[g] for g in z]
    leftover = sum(int(free[l]) * y[l] for l in cand) - need
    model.minimize(placement_cost(ix.weights, leaves=sum(y.values()), tier=sum(tier), broken_leaves=sum(broken_l),
                                  broken_groups=sum(broken_g), partial=sum(partial), leftover=leftover))
    _hint(ix, model, v, free, cand, hint)

    # -- solve
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(time_limit_s, 0.001)
    if cfg.cpsat_work_limit is not None:  # reproducible: stops on work done, whatever the machine's speed
        solver.parameters.max_deterministic_time = cfg.cpsat_work_limit
    solver.parameters.num_workers = cfg.num_workers
    solver.parameters.random_seed = cfg.random_seed
    # small models under a tight limit: presolve costs more than it saves, and the hint is a full solution
    solver.parameters.cp_model_presolve = cfg.cpsat_presolve
    status = solver.solve(model)
    proto = str(model.proto) if cfg.dump_models else None

    # -- read
    name = STATUS.get(status, str(status))
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return SolveResult(name, None, proto)
    take = {l: int(solver.value(x[l])) for l in cand if solver.value(x[l]) > 0}
    return SolveResult(name, take, proto)


def _variables(ix: FabricIndex, model: cp_model.CpModel, counts: np.ndarray, free: np.ndarray,
               cand: list[int]) -> _Vars:
    """Nodes taken per leaf, leaf used, leaf emptied of free nodes, inner group used."""
    names = ix.fabric.group_names
    x = {l: model.new_int_var(0, int(counts[l]), f"take[{names[l]}]") for l in cand}
    y = {l: model.new_bool_var(f"used[{names[l]}]") for l in cand}
    full = {l: model.new_bool_var(f"emptied[{names[l]}]") for l in cand if counts[l] >= free[l]}
    members: dict[int, list[int]] = {}
    for t in range(1, ix.depth):
        for l in cand:
            g = int(ix.anc[t][l])
            if g >= 0:
                members.setdefault(g, []).append(l)
    z = {g: model.new_bool_var(f"used[{names[g]}]") for g in members}
    return _Vars(x, y, full, z, members)


def _hint(ix: FabricIndex, model: cp_model.CpModel, v: _Vars, free: np.ndarray, cand: list[int],
          hint: dict[int, int]) -> None:
    """The greedy answer as a complete hint (every variable), so the first solution costs nothing to find."""
    used_groups: dict[int, int] = {}
    for l in cand:
        h = int(hint.get(l, 0))
        model.add_hint(v.x[l], h)
        model.add_hint(v.y[l], int(h > 0))
        if l in v.full:
            model.add_hint(v.full[l], int(h > 0 and h == int(free[l])))
        if h > 0:
            for t in range(1, ix.depth):
                g = int(ix.anc[t][l])
                if g >= 0:
                    used_groups[g] = used_groups.get(g, 0) + h
    for g, var in v.z.items():
        model.add_hint(var, int(g in used_groups))
    for g, fgv in v.emptied_g.items():
        model.add_hint(fgv, int(used_groups.get(g, 0) == int(ix.group_nodes[g])))
