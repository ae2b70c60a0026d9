"""Generated fabrics match the reference designs' arithmetic."""
from __future__ import annotations

import pytest

from topology.generate import design_for, generate


@pytest.mark.parametrize("preset,nodes,gpus,leaves,depth", [
    ("superpod", 128, 1_024, 4, 2),
    ("campus-16k", 2_048, 16_384, 64, 3),
    ("colossus-100k", 12_800, 102_400, 400, 3),
    ("colossus-200k", 27_648, 221_184, 864, 3),
    ("gb200-nvl72", 1_152, 4_608, 8, 2),
])
def test_preset_sizes(preset: str, nodes: int, gpus: int, leaves: int, depth: int) -> None:
    f = generate(design_for(preset))
    assert (f.n_nodes, f.total_gpus, f.n_leaves, f.depth) == (nodes, gpus, leaves, depth)


def test_superpod_matches_the_reference_architecture() -> None:
    """DGX H100 SuperPOD, 4 SUs: 32 rail leaves (8 per SU), 16 spines, 32 nodes per SU."""
    f = generate(design_for("superpod"))
    assert f.rails == 8
    leaves = [s for s in f.switches if s.nodes]
    assert len(leaves) == 32 and all(len(s.nodes) == 32 for s in leaves)
    spine = f.switches[f.switch_index["spine"]]
    assert len(spine.members) == 16


def test_overrides_and_no_rails() -> None:
    f = generate(design_for("campus-16k", pods=2, sus_per_pod=3, nodes_per_su=4, rails=0, gpu_model="b200"))
    assert f.n_nodes == 24 and f.rails == 0 and f.n_leaves == 6
    assert f.node_types[0].gpu_model == "b200"
    assert f.group_names[:2] == ("p01-su01", "p01-su02")


def test_nvlink_domains_are_below_leaves() -> None:
    f = generate(design_for("gb200-nvl72"))
    assert len(f.domain_names) == 64
    for d in range(len(f.domain_names)):
        members = (f.node_domain == d).nonzero()[0]
        assert len(members) == 18 and len(set(f.node_leaf[members].tolist())) == 1
