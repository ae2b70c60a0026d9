"""Golden planning cases: small fabrics drawn in ASCII, expected answers worked out by hand.

Each file in tests/plan_cases/ holds an inventory, busy GPUs, jobs, the expected placements and,
where given, the node set Slurm 22.05's topology/tree would choose (traced by hand from
../shared/SLURM-TREE.md). Every result also passes the validator.
"""
from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest
import yaml

from placer import PlannerConfig, plan
from placer.eligibility import eligibility
from placer.index import index_for
from placer.jobs import jobs_from_list
from placer.slurm_tree import Version, slurm_tree_choice
from placer.validate import validate
from topology import ClusterState, load_inventory_text
from topology.hostlists import expand

CASES = sorted((Path(__file__).parent / "plan_cases").glob("*.yaml"))


def load_case(path: Path):
    case = yaml.safe_load(path.read_text())
    fabric, _ = load_inventory_text(case["inventory"], str(path))
    state = ClusterState(fabric)
    for name, ids in (case.get("busy") or {}).items():
        n = fabric.node_index[name]
        state.allocate(n, list(range(int(fabric.node_gpus[n]))) if ids == "all" else ids)
    problems: list = []
    jobs = jobs_from_list(case["jobs"], problems)
    assert problems == []
    return case, fabric, state, jobs


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_plan_case(path: Path) -> None:
    case, fabric, state, jobs = load_case(path)
    result = plan(fabric, state, jobs, PlannerConfig(time_limit_s=1.0))
    got = {p.job: p for p in result.placements}
    for job, want in case["expect"].items():
        p = got[job]
        for key, value in want.items():
            actual = getattr(p, key)
            if key == "nodes":
                assert sorted(actual) == sorted(expand(value)), f"{job}: {p.reason}"
            else:
                assert actual == value, f"{job}.{key}: {actual!r} != {value!r} ({p.reason})"
    assert validate(fabric, state, jobs, result.placements) == []


SLURM_CASES = [(p, key, version) for p in CASES for key, version in (("slurm_tree", "22.05"), ("slurm_tree_2405", "24.05"))
               if key in yaml.safe_load(p.read_text())]


@pytest.mark.parametrize("path,key,version", SLURM_CASES, ids=[f"{p.stem}-{v}" for p, _, v in SLURM_CASES])
def test_slurm_tree_case(path: Path, key: str, version: str) -> None:
    case, fabric, state, jobs = load_case(path)
    ix = index_for(fabric)
    by_id = {j.job_id: j for j in jobs}
    for job, nodes in case[key].items():
        choice = slurm_tree_choice(ix, state, eligibility(ix, state, by_id[job]), version=cast(Version, version))
        assert choice is not None
        assert sorted(fabric.node_names[n] for n in choice.nodes) == sorted(expand(nodes))
