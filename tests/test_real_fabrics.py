"""Real sites' files from ../shared/data (skipped, saying so, when ../shared is absent)."""
from __future__ import annotations

from topology import dump_inventory, load_inventory_text
from topology.exporters import export
from topology.slurm_conf import import_slurm

from .conftest import shared_file
from .helpers import placement_signature


def test_psmn_x5_topology_conf() -> None:
    """PSMN's hand-written X5 file: 6 leaves, 4 redundant spines, 1 core, and two sloppy lines.

    The spines S-...851e and S-...8530 list the core S-...86a2 as a child while the core lists them:
    a cycle Slurm's tree cannot mean; the four spines share leaves (a fat-tree). Both are repaired
    and reported, never silently.
    """
    path = shared_file("fabrics/psmn-x5/X5.topology.conf")
    fabric, warnings = import_slurm(path.read_text(), None, topology_source="X5.topology.conf",
                                    gpus_per_node=1, name="x5")
    assert fabric.n_nodes == 89 and fabric.n_leaves == 6 and fabric.depth == 3
    spine = fabric.switches[fabric.switch_index["S-0008f1050010851e"]]
    assert set(spine.members) == {"S-0008f1050010851e", "S-0008f10500108c5c", "S-0008f10500108098",
                                  "S-0008f10500108530"}
    root = fabric.group_names[fabric.group_parent.tolist().index(-1)]
    assert root == "S-0008f105001086a2"
    msgs = [w.message for w in warnings]
    assert sum("is above it (a cycle" in m for m in msgs) == 2
    assert sum("merged into one logical switch" in m for m in msgs) == 1
    assert any("no slurm.conf given" in m for m in msgs)
    assert all(w.severity == "warning" for w in warnings)
    # nodes per leaf as the file lists them; unnamed HCAs (H-<guid>) are kept, not dropped
    sizes = sorted(len(fabric.nodes_of_leaf(leaf)) for leaf in range(fabric.n_leaves))
    assert sizes == [5, 6, 9, 21, 24, 24]  # counted by hand from the file
    assert "H-78e7d1030024535c" in fabric.node_index
    # and it survives inventory and Slurm round trips
    again, _ = load_inventory_text(dump_inventory(fabric))
    assert placement_signature(again) == placement_signature(fabric)
    back, _ = import_slurm(export(fabric, "slurm-tree"), export(fabric, "slurm-nodes"), name="x5")
    assert placement_signature(back) == placement_signature(fabric)
