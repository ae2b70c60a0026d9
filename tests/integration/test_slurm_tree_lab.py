"""The simulator's `slurm-tree` policy against the real thing: on fragmented states of the lab (a
real slurmctld 22.05 with topology/tree), Slurm's own node choice for a whole-node job must be the
node set our re-implementation (placer/slurm_tree.py) picks on the same usable nodes."""
from __future__ import annotations

import random

import numpy as np
import pytest

from placer.index import index_for
from placer.slurm_tree import slurm_tree_nodes
from topology.hostlists import compress

from .conftest import LabHandle, running_nodes

pytestmark = pytest.mark.lab

STATES = 10


def test_slurm_tree_policy_picks_the_nodes_real_slurm_picks(lab: LabHandle) -> None:
    fabric = lab.fabric
    ix = index_for(fabric)
    names = fabric.node_names
    rng = random.Random(5)
    not_name_order = 0
    lab.clean()
    try:
        for case in range(STATES):
            # unusable nodes stand for busy ones: Slurm leaves drained and fully allocated nodes out of
            # the usable set alike, and draining is instant where fillers would take a scheduling pass
            busy = sorted(rng.sample(range(fabric.n_nodes), rng.randint(6, 20)))
            need = rng.randint(2, min(14, fabric.n_nodes - len(busy)))
            lab.run("scontrol", "update", f"NodeName={compress(names[i] for i in busy)}", "State=DRAIN",
                    "Reason=tree-agreement")
            job = lab.sbatch("-J", f"tree-{case}", "-N", str(need), "--exclusive", "--comment=placer:off")
            slurm = running_nodes(lab, job)
            usable = np.ones(fabric.n_nodes, dtype=bool)
            usable[busy] = False
            ours = slurm_tree_nodes(ix, usable, need, "22.05")
            assert ours is not None
            assert sorted(names[i] for i in ours) == slurm, (
                f"state {case}: {need} nodes with {compress(names[i] for i in busy)} unusable: "
                f"Slurm chose {compress(slurm)}, the re-implementation {compress(names[i] for i in ours)}")
            name_order = sorted(names[i] for i in np.nonzero(usable)[0][:need])
            not_name_order += slurm != name_order
            lab.clean()
    finally:
        lab.clean()
    # the states must exercise the tree's choice, not only Slurm taking the lowest-named free nodes
    assert not_name_order >= 3, f"only {not_name_order} of {STATES} states differ from name order"
