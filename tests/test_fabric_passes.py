"""Each pass of build_fabric on its own (topology/build.py, topology/placement_tree.py, topology/merge.py)."""
from __future__ import annotations

from networkx.utils import UnionFind

from topology.build import attach_nodes, build_fabric, node_table, node_types, nvlink_domains, switch_tree
from topology.merge import merge_co_parents
from topology.placement_tree import common_name, inner_groups, scalable_units
from topology.problems import Problem
from topology.spec import DomainSpec, FabricSpec, NodeSpec, NodeType, SwitchSpec


def rails_spec() -> FabricSpec:
    """Two units of two rails, two rail spines (one per rail) over both units:

            spine-r0       spine-r1
            /     \\        /     \\
       su1-r0  su2-r0   su1-r1  su2-r1
        n1 n2   n3 n4    n1 n2   n3 n4
    """
    t = {"g8": NodeType("g8", 8)}
    sw = [SwitchSpec("su1-r0", "s0", parent="spine-r0", rail=0, nodes=["n1", "n2"]),
          SwitchSpec("su2-r0", "s1", parent="spine-r0", rail=0, nodes=["n3", "n4"]),
          SwitchSpec("su1-r1", "s2", parent="spine-r1", rail=1, nodes=["n1", "n2"]),
          SwitchSpec("su2-r1", "s3", parent="spine-r1", rail=1, nodes=["n3", "n4"]),
          SwitchSpec("spine-r0", "s4"), SwitchSpec("spine-r1", "s5")]
    nodes = [NodeSpec(f"n{i}", f"nodes[{i}]", "g8") for i in range(1, 5)]
    return FabricSpec("rails", t, sw, nodes)


def test_node_types_reports_gpus_and_islands() -> None:
    problems: list[Problem] = []
    spec = FabricSpec("x", {"bad": NodeType("bad", 0), "isl": NodeType("isl", 4, nvlink_islands=((0, 1), (1, 2)))})
    assert node_types(spec, problems) == {"bad": 0, "isl": 1}
    assert [p.path for p in problems] == ["node_types.bad.gpus", "node_types.isl.nvlink_islands"]


def test_node_table_duplicates_unknown_types_and_states() -> None:
    problems: list[Problem] = []
    spec = FabricSpec("x", {"g": NodeType("g", 8)}, [], [
        NodeSpec("a", "n[0]", "g"), NodeSpec("a", "n[1]", "g"), NodeSpec("b", "n[2]", "nope"),
        NodeSpec("c", "n[3]", "g", state="weird"), NodeSpec("d", "n[4]", "g", state="drain", reason="fan")])
    t = node_table(spec, {"g": 0}, problems)
    assert t.names == ["a", "d"] and t.state == [0, 1] and t.reasons == {1: "fan"}
    assert t.rejected == {"b", "c"}
    assert ["duplicate node" in p.message for p in problems] == [True, False, False]


def test_switch_tree_tiers_and_roots() -> None:
    problems: list[Problem] = []
    tree = switch_tree(rails_spec(), problems)
    assert tree is not None
    assert tree.parent == [4, 4, 5, 5, -1, -1]
    assert tree.tier == [0, 0, 0, 0, 1, 1]
    # two rail spines without a common parent: two switch roots, but one placement tree (the rail planes
    # merge), so nothing to say
    assert problems == []
    fabric, warnings = build_fabric(rails_spec())
    assert (fabric.group_parent < 0).sum() == 1 and not any("disjoint" in w.message for w in warnings)


def test_switch_tree_cycle_stops_the_build() -> None:
    problems: list[Problem] = []
    spec = FabricSpec("c", {}, [SwitchSpec("a", "s0", parent="b"), SwitchSpec("b", "s1", parent="a")])
    assert switch_tree(spec, problems) is None
    assert problems[0].message == "cycle in the switch tree: a -> b -> a"


def test_attach_nodes_one_leaf_per_rail() -> None:
    spec = rails_spec()
    spec.switches[1].nodes.append("n1")  # n1 now under su1-r0 and su2-r0, both rail 0
    problems: list[Problem] = []
    tree = switch_tree(spec, [])
    assert tree is not None
    nodes = node_table(spec, {"g8": 0}, [])
    att = attach_nodes(spec, tree, nodes, problems)
    assert [p.path for p in problems] == ["s1.nodes[2]"]
    assert att.node_switches[0] == (0, 2)  # n1: rail 0 leaf su1-r0, rail 1 leaf su1-r1
    assert att.leaf_nodes_of[0] == [0, 1]


def test_nvlink_domains_once_per_node() -> None:
    spec = rails_spec()
    spec.domains = [DomainSpec("d1", "domains[0]", ["n1", "n2"]), DomainSpec("d2", "domains[1]", ["n2", "zz"])]
    problems: list[Problem] = []
    d = nvlink_domains(spec, node_table(spec, {"g8": 0}, []), problems)
    assert d.names == ["d1", "d2"] and d.node_domain.tolist() == [0, 0, -1, -1]
    assert [p.path for p in problems] == ["domains[1].nodes[0]", "domains[1].nodes[1]"]


def test_scalable_units_collapse_rails_and_merge_short_nodes() -> None:
    problems: list[Problem] = []
    # n5 hangs from rail 0 of unit 1 only (a pulled cable): it joins unit (0, 2)
    units = scalable_units(rails_spec(), [(0, 2), (0, 2), (1, 3), (1, 3), (0,)], ["n1", "n2", "n3", "n4", "n5"],
                           problems)
    assert units.keys == [(0, 2), (1, 3)]
    assert units.node_leaf.tolist() == [0, 0, 1, 1, 0]
    assert [p.severity for p in problems] == ["warning"] and "n5" in problems[0].message


def test_inner_groups_merge_rail_spines_into_one_group() -> None:
    spec = rails_spec()
    tree = switch_tree(spec, [])
    assert tree is not None
    groups = inner_groups(spec, tree.parent, tree.children, [(0, 2), (1, 3)], [])
    assert groups is not None
    # the two units are named from their rail leaves; the rail spines serve the same units: one group
    assert groups.names == ["su1", "su2", "spine-r0"]
    assert groups.switches[2] == (4, 5)
    assert groups.parent.tolist() == [2, 2, -1] and groups.level.tolist() == [0, 0, 1]


def test_common_name_cuts_at_separators_and_drops_rail_marker() -> None:
    assert common_name(["su01-r0", "su01-r7"]) == "su01"
    assert common_name(["leafA1", "leafB1"]) == ""
    assert common_name(["pod2_su3_rail0", "pod2_su3_rail1"]) == "pod2_su3"


def test_merge_co_parents_reaches_a_fixed_point() -> None:
    # c1 under a and b (redundant spines); a under x, b under y: once a and b merge, x and y merge too
    parents = {"c1": ["a", "b"], "a": ["x"], "b": ["y"], "x": [], "y": []}
    uf = merge_co_parents(UnionFind(parents), list(parents), lambda m: parents[m])
    assert uf["a"] == uf["b"] and uf["x"] == uf["y"] and uf["a"] != uf["x"]
    assert sorted(map(sorted, uf.to_sets())) == [["a", "b"], ["c1"], ["x", "y"]]
