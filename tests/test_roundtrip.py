"""Round trips: inventory dump -> load is identity; Slurm import -> export -> import gives the same fabric."""
from __future__ import annotations

import pytest

from topology import build_fabric, dump_inventory, load_inventory, load_inventory_text
from topology.exporters import export
from topology.generate import PRESETS, design_for, generate
from topology.inventory import fabric_to_document
from topology.slurm_conf import import_slurm

from .conftest import ROOT
from .helpers import placement_signature, random_spec

SEEDS = range(40)


def via_slurm(fabric):
    return import_slurm(export(fabric, "slurm-tree"), export(fabric, "slurm-nodes"), name=fabric.name)[0]


@pytest.mark.parametrize("seed", SEEDS)
def test_dump_load_is_identity_on_random_fabrics(seed: int) -> None:
    fabric, _ = build_fabric(random_spec(seed))
    again, warnings = load_inventory_text(dump_inventory(fabric))
    assert warnings == []
    assert fabric_to_document(again) == fabric_to_document(fabric)
    assert placement_signature(again) == placement_signature(fabric)
    assert again.group_names == fabric.group_names
    assert (again.node_domain == fabric.node_domain).all()


@pytest.mark.parametrize("preset", ["tiny", "superpod", "gb200-nvl72", "campus-16k"])
def test_dump_load_is_identity_on_presets(preset: str) -> None:
    fabric = generate(design_for(preset))
    again, _ = load_inventory_text(dump_inventory(fabric))
    assert fabric_to_document(again) == fabric_to_document(fabric)


def test_example_inventory_round_trips() -> None:
    fabric, _ = load_inventory(ROOT / "examples" / "inventory-example.yaml")
    again, _ = load_inventory_text(dump_inventory(fabric))
    assert fabric_to_document(again) == fabric_to_document(fabric)


@pytest.mark.parametrize("seed", SEEDS)
def test_slurm_export_import_keeps_the_placement_fabric(seed: int) -> None:
    """Slurm's files carry no rails, islands or domains; everything placement needs survives."""
    fabric, _ = build_fabric(random_spec(seed))
    assert placement_signature(via_slurm(fabric)) == placement_signature(fabric)


@pytest.mark.parametrize("seed", SEEDS)
def test_slurm_import_export_import_is_stable(seed: int) -> None:
    """import -> export -> import: the second import equals the first, to the letter."""
    fabric, _ = build_fabric(random_spec(seed, rails=False))
    first = via_slurm(fabric)
    second = via_slurm(first)
    assert fabric_to_document(second) == fabric_to_document(first)
    assert export(second, "slurm-tree") == export(first, "slurm-tree")
    assert export(second, "slurm-nodes") == export(first, "slurm-nodes")


def test_rail_fabric_exports_scalable_units_as_leaves() -> None:
    fabric = generate(design_for("tiny"))
    back = via_slurm(fabric)
    assert back.group_names[: back.n_leaves] == ("p01-su01", "p01-su02", "p02-su01", "p02-su02")
    assert placement_signature(back) == placement_signature(fabric)


# the Colossus presets go through the same path in bench/fabric_load.py (too slow for unit tests)
@pytest.mark.parametrize("preset", sorted(p for p in PRESETS if not p.startswith("colossus")))
def test_every_preset_survives_slurm(preset: str) -> None:
    fabric = generate(design_for(preset))
    assert placement_signature(via_slurm(fabric)) == placement_signature(fabric)
