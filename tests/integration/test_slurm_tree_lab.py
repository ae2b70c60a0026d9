"""The simulator's `slurm-tree` policy against the real thing: on fragmented states of the lab (a
real slurmctld 22.05 with topology/tree), Slurm's own choice must be what our re-implementation
(placer/slurm_tree.py) picks on the same state: the node set of a whole-node job, and the node and
GPU indices of a job on part of one node."""
from __future__ import annotations

import random

import numpy as np
import pytest

from placer.eligibility import eligibility
from placer.index import index_for
from placer.jobs import JobRequest
from placer.sim.policies import make_policy
from placer.slurm_tree import Version, slurm_tree_nodes
from placer.types import PlannerConfig
from plugins.backend import to_cluster_state
from topology.hostlists import compress

from .conftest import LabHandle, backend, running_nodes

pytestmark = pytest.mark.lab

STATES = 10


def tree_version(lab: LabHandle) -> Version:
    """Which of Slurm's two tree algorithms the lab's version runs (../shared/SLURM-TREE.md)."""
    return "22.05" if lab.version == "22.05" else "24.05"


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
            ours = slurm_tree_nodes(ix, usable, need, tree_version(lab))
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


def _all_running(lab: LabHandle, jobs: list[int], timeout_s: float = 30) -> None:
    for j in jobs:
        running_nodes(lab, j, timeout_s)


def test_slurm_tree_policy_picks_the_node_and_gpus_real_slurm_picks(lab: LabHandle) -> None:
    """Jobs on part of one node: real filler jobs leave nodes partly used; the simulator's slurm-tree
    policy (node by Slurm's tree, then the lowest free GPUs) must name Slurm's node and GPU indices."""
    fabric = lab.fabric
    ix = index_for(fabric)
    names = fabric.node_names
    policy = make_policy("slurm-tree" if tree_version(lab) == "22.05" else "slurm-tree-24.05", PlannerConfig())
    cli = backend(lab)
    rng = random.Random(11)
    lab.clean()
    try:
        for case in range(4):
            nodes = rng.sample(range(fabric.n_nodes), 14)
            drained, partly = nodes[:6], nodes[6:]
            lab.run("scontrol", "update", f"NodeName={compress(names[i] for i in drained)}", "State=DRAIN",
                    "Reason=tree-agreement")
            fillers = [lab.sbatch("-J", f"fill-{case}", "-w", names[i], f"--gres=gpu:{rng.randint(1, 7)}",
                                  "--comment=placer:off") for i in partly]
            _all_running(lab, fillers)
            before = to_cluster_state(fabric, cli.snapshot()).state
            g = rng.choice((1, 2, 3, 4))
            job = lab.sbatch("-J", f"part-{case}", f"--gres=gpu:{g}", "--comment=placer:off")
            running_nodes(lab, job)
            real = next(j for j in cli.snapshot().jobs if j.job_id == job)
            req = JobRequest(job_id="probe", gpus=g)
            alloc = policy(ix, before, req, eligibility(ix, before, req))
            assert alloc is not None
            ours = {names[n]: list(ids) for n, ids in alloc}
            assert ours == {n: list(ids) for n, ids in real.gpu_ids.items()}, (
                f"state {case}: {g} GPUs; Slurm chose {real.gpu_ids}, the re-implementation {ours}")
            lab.clean()
    finally:
        lab.clean()
