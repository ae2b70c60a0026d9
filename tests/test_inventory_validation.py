"""Every validation message of the inventory loader, table-driven; plus 'all problems at once'.

Fixtures are drawn as they are written:

        top
       /   \
     l1     l2
     n[1-2] n[3-4]
"""
from __future__ import annotations

import pytest

from topology import InventoryError, load_inventory_text

from .conftest import dedent

HEAD = """\
version: 1
name: t
node_types:
  g8: {gpus: 8, gpu_model: h100}
defaults: {type: g8}
"""

VALID = HEAD + """\
switches:
  - {name: top}
  - {name: l1, parent: top, nodes: "n[1-2]"}
  - {name: l2, parent: top, nodes: "n[3-4]"}
"""

# (id, inventory text, [(path fragment, message fragment), ...]) -- every expected problem must appear
CASES = [
    ("yaml-syntax-error-has-line", "version: 1\nswitches: [\n  - {name: a\n", [("", "not valid YAML")]),
    ("top-level-not-mapping", "- 1\n- 2\n", [("", "mapping at top level")]),
    ("version-missing", VALID.replace("version: 1\n", ""), [("version", "unsupported inventory version None")]),
    ("version-wrong", VALID.replace("version: 1", "version: 7"), [("version", "unsupported inventory version 7")]),
    ("unknown-top-key", VALID + "swiches: []\n", [(".swiches", "unknown key 'swiches'")]),
    ("unknown-switch-key", VALID.replace("{name: top}", "{name: top, speed: 3}"), [("switches[0](top).speed", "unknown key")]),
    ("unknown-parent", VALID.replace("parent: top, nodes: \"n[3-4]\"", "parent: tpo, nodes: \"n[3-4]\""),
     [("switches[2](l2).parent", "unknown parent switch 'tpo'")]),
    ("parent-is-self", VALID.replace("{name: top}", "{name: top, parent: top}"), [("switches[0](top).parent", "names itself")]),
    ("cycle", HEAD + dedent("""
        switches:
          - {name: top}
          - {name: a, parent: b}
          - {name: b, parent: a}
          - {name: l1, parent: a, nodes: "n1"}
        """), [("parent", "cycle in the switch tree: ")]),
    ("duplicate-switch", VALID + '  - {name: l1, parent: top, nodes: "n9"}\n', [("switches[3](l1)", "duplicate switch name 'l1'")]),
    ("node-under-two-leaves", VALID.replace('nodes: "n[3-4]"', 'nodes: "n[2-4]"'),
     [("switches[2](l2).nodes[0]", "node 'n2' is also under 'l1'")]),
    ("node-under-two-leaves-of-one-rail", HEAD + dedent("""
        switches:
          - {name: top}
          - {name: a-r0, parent: top, rail: 0, nodes: "n[1-2]"}
          - {name: a-r1, parent: top, rail: 1, nodes: "n[1-2]"}
          - {name: b-r0, parent: top, rail: 0, nodes: "n[2-3]"}
          - {name: b-r1, parent: top, rail: 1, nodes: "n3"}
        """), [("switches[3](b-r0).nodes[0]", "node 'n2' is also under 'a-r0': a node hangs from one leaf of rail 0")]),
    ("rail-and-plain-leaf-mixed", HEAD + dedent("""
        switches:
          - {name: top}
          - {name: a-r0, parent: top, rail: 0, nodes: "n1"}
          - {name: plain, parent: top, nodes: "n1"}
        """), [("", "hangs from a rail-less leaf 'plain' and from rail leaves")]),
    ("gpus-below-one", VALID.replace("g8: {gpus: 8, gpu_model: h100}", "g8: {gpus: 0, gpu_model: h100}"),
     [("node_types.g8.gpus", "has 0 GPUs; a GPU node needs at least 1")]),
    ("gpus-above-what-plan-holds", VALID.replace("g8: {gpus: 8, gpu_model: h100}", "g8: {gpus: 65, gpu_model: h100}"),
     [("node_types.g8.gpus", "has 65 GPUs; placer supports at most 64 per node")]),
    ("gpus-not-a-number", VALID.replace("gpus: 8", "gpus: eight"), [("node_types.g8.gpus", "expected a whole number")]),
    ("gpus-missing", VALID.replace("gpus: 8, ", ""), [("node_types.g8.gpus", "needs a GPU count")]),
    ("malformed-hostlist-in-switch", VALID.replace('"n[1-2]"', '"n[1-2"'), [("switches[1](l1).nodes", "malformed hostlist 'n[1-2'")]),
    ("malformed-hostlist-in-nodes", VALID + 'nodes:\n  - {names: "x[3-1]"}\n', [("nodes[0].names", "malformed hostlist")]),
    ("unknown-node-type", VALID + 'nodes:\n  - {names: "n1", type: g9}\n', [("nodes[0].names[0]", "unknown node type 'g9'")]),
    ("unknown-default-type", VALID.replace("defaults: {type: g8}", "defaults: {type: zz}"), [("defaults.type", "unknown node type 'zz'")]),
    ("no-type-no-default", VALID.replace("defaults: {type: g8}\n", "") + 'nodes:\n  - {names: "n[1-4]"}\n',
     [("nodes[0].type", "no node type given and no defaults.type")]),
    ("undeclared-node-without-default", VALID.replace("defaults: {type: g8}\n", "") + 'nodes:\n  - {names: "n[1-3]", type: g8}\n',
     [("switches[2](l2).nodes[1]", "node 'n4' under switch 'l2' is not declared in nodes")]),
    ("declared-node-under-no-leaf", VALID + 'nodes:\n  - {names: "n[1-5]"}\n', [("nodes[0].names[4]", "node 'n5' is under no leaf switch")]),
    ("duplicate-node", VALID + 'nodes:\n  - {names: "n[1-2]"}\n  - {names: "n2"}\n', [("nodes[1].names[0]", "duplicate node 'n2'")]),
    ("node-listed-twice-in-leaf", VALID.replace('"n[1-2]"', '"n[1-2],n1"'), [("switches[1](l1).nodes[2]", "listed twice")]),
    ("leaf-with-children", VALID.replace("{name: top}", '{name: top, nodes: "n9"}'), [("switches[0](top)", "both nodes and child switches")]),
    ("rail-on-inner-switch", VALID.replace("{name: top}", "{name: top, rail: 1}"), [("switches[0](top).rail", "has a rail but no nodes")]),
    ("negative-rail", VALID.replace('parent: top, nodes: "n[1-2]"', 'parent: top, rail: -1, nodes: "n[1-2]"'),
     [("switches[1](l1).rail", "rail -1 must be 0 or more")]),
    ("bad-state", VALID + 'nodes:\n  - {names: "n1", state: broken}\n', [("nodes[0].state", "unknown state 'broken'")]),
    ("islands-not-partition", VALID.replace("gpu_model: h100}", "gpu_model: h100, nvlink_islands: [[0,1],[1,2]]}"),
     [("node_types.g8.nvlink_islands", "must cover GPU indices 0..7 exactly once")]),
    ("islands-wrong-shape", VALID.replace("gpu_model: h100}", "gpu_model: h100, nvlink_islands: [1, 2]}"),
     [("node_types.g8.nvlink_islands", "expected a list of GPU index lists")]),
    ("domain-spans-leaves", VALID + 'nvlink_domains:\n  - {name: d1, nodes: "n[2-3]"}\n',
     [("nvlink_domains[0]", "NVLink domain 'd1' spans leaves ['l1', 'l2']")]),
    ("domain-unknown-node", VALID + 'nvlink_domains:\n  - {name: d1, nodes: "n7"}\n', [("nvlink_domains[0].nodes[0]", "unknown node 'n7'")]),
    ("node-in-two-domains", VALID + 'nvlink_domains:\n  - {name: d1, nodes: "n1"}\n  - {name: d2, nodes: "n1"}\n',
     [("nvlink_domains[1].nodes[0]", "already in NVLink domain 'd1'")]),
    ("duplicate-domain", VALID + 'nvlink_domains:\n  - {name: d1, nodes: "n1"}\n  - {name: d1, nodes: "n2"}\n',
     [("nvlink_domains[1]", "duplicate NVLink domain name 'd1'")]),
    ("no-switches", HEAD, [("switches", "no switches")]),
    ("switches-not-a-list", HEAD + "switches: {a: 1}\n", [("switches", "expected a list")]),
    ("switch-without-name", VALID + "  - {parent: top}\n", [("switches[3].name", "a switch needs a name")]),
    ("node-entry-without-names", VALID + "nodes:\n  - {type: g8}\n", [("nodes[0]", "needs `names`")]),
    ("node-types-not-a-mapping", VALID.replace("  g8: {gpus: 8, gpu_model: h100}\n", "  - g8\n").replace("defaults: {type: g8}\n", ""),
     [("node_types", "expected a mapping of type name to attributes")]),
    ("node-type-not-a-mapping", VALID.replace("g8: {gpus: 8, gpu_model: h100}", "g8: 8"), [("node_types.g8", "expected a mapping, got 8")]),
    ("features-not-a-list", VALID.replace("gpu_model: h100}", "gpu_model: h100, features: {a: 1}}"),
     [("node_types.g8.features", "expected a list of feature names")]),
    ("name-not-a-string", VALID.replace("{name: top}", "{name: [top]}"), [("switches[0].name", "expected a string, got ['top']")]),
    ("defaults-not-a-mapping", VALID.replace("defaults: {type: g8}", "defaults: g8"), [("defaults", "expected a mapping")]),
    ("list-item-not-a-mapping", VALID + "nvlink_domains:\n  - just-a-name\n", [("nvlink_domains[0]", "expected a mapping, got 'just-a-name'")]),
    ("nested-rail-planes", HEAD + dedent("""
        switches:
          - {name: x}
          - {name: y, parent: x}
          - {name: a-r0, parent: x, rail: 0, nodes: "n1"}
          - {name: a-r1, parent: y, rail: 1, nodes: "n1"}
        """), [("switches", "hang from switches ['x', 'y'] of which one is above another")]),
]


@pytest.mark.parametrize("text,expected", [pytest.param(t, e, id=i) for i, t, e in CASES])
def test_validation_message(text: str, expected: list[tuple[str, str]]) -> None:
    with pytest.raises(InventoryError) as info:
        load_inventory_text(text, "inv.yaml")
    rendered = [(p.path, p.message) for p in info.value.problems if p.severity == "error"]
    for path_part, msg_part in expected:
        assert any(path_part in path and msg_part in msg for path, msg in rendered), (
            f"expected a problem at {path_part!r} saying {msg_part!r}; got {rendered}")


def test_yaml_error_names_line() -> None:
    with pytest.raises(InventoryError) as info:
        load_inventory_text("version: 1\nswitches:\n  - {name: a\n  - b: [\n", "inv.yaml")
    assert info.value.problems[0].line is not None
    assert "inv.yaml:" in info.value.render()


def test_valid_fixture_loads() -> None:
    fabric, warnings = load_inventory_text(VALID)
    assert fabric.n_nodes == 4 and fabric.n_leaves == 2 and warnings == []


def test_every_problem_reported_at_once() -> None:
    text = HEAD.replace("gpus: 8", "gpus: 0") + dedent("""
        switches:
          - {name: top}
          - {name: l1, parent: tpo, nodes: "n[1-2]"}
          - {name: l1, parent: top, nodes: "n3"}
          - {name: l2, parent: top, nodes: "n[3-4"}
        nodes:
          - {names: "n1", state: sideways}
        """)
    with pytest.raises(InventoryError) as info:
        load_inventory_text(text, "inv.yaml")
    msgs = " | ".join(p.message for p in info.value.problems)
    for part in ("has 0 GPUs", "unknown parent switch 'tpo'", "duplicate switch name 'l1'", "malformed hostlist",
                 "unknown state 'sideways'"):
        assert part in msgs
    assert len([p for p in info.value.problems if p.severity == "error"]) >= 5


def test_dangling_switch_is_a_warning() -> None:
    fabric, warnings = load_inventory_text(VALID + "  - {name: spare, parent: top}\n")
    assert [w.severity for w in warnings] == ["warning"]
    assert "neither nodes nor child switches" in warnings[0].message
    assert fabric.n_leaves == 2


def test_miswired_rail_is_a_warning() -> None:
    """n2's rail-1 cable goes to the other SU's leaf: two units share leaf b-r1, and that is said."""
    fabric, warnings = load_inventory_text(HEAD + dedent("""
        switches:
          - {name: top}
          - {name: a-r0, parent: top, rail: 0, nodes: "n[1-2]"}
          - {name: a-r1, parent: top, rail: 1, nodes: "n1"}
          - {name: b-r0, parent: top, rail: 0, nodes: "n[3-4]"}
          - {name: b-r1, parent: top, rail: 1, nodes: "n[2-4]"}
        """))
    assert fabric.n_leaves == 3
    msgs = [w.message for w in warnings]
    assert any("leaf 'a-r0' serves nodes of 2 scalable units" in m for m in msgs)
    assert any("leaf 'b-r1' serves nodes of 2 scalable units" in m for m in msgs)
