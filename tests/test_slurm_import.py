"""topology.conf + slurm.conf import: syntax, node lines, and every reported sloppiness.

Fixture fabric (interleaved leaves, as on the lab):

            top
          /     \\
       s1         s2
       n[01-04]   n[05-08]
"""
from __future__ import annotations

import pytest

from topology import InventoryError, NodeState
from topology.slurm_conf import import_slurm, logical_lines, parse_gres_gpus, parse_slurm_conf

from .conftest import dedent

TOPO = dedent("""
    # a comment line
    SwitchName=s1 Nodes=n[01-04] LinkSpeed=100   # trailing comment
    SwitchName=s2 \\
        Nodes=n[05-08]
    SwitchName=top Switches=s[1-2]
    """)
SLURM = dedent("""
    ClusterName=lab
    NodeName=DEFAULT CPUs=16 RealMemory=64000 Gres=gpu:8 Feature=h100
    NodeName=n[01-06] NodeAddr=127.0.0.1
    NodeName=n[07-08] Gres=gpu:a100:4,nic:1 Features=a100,ib State=DRAIN Reason="bad fan"
    DownNodes=n03 State=DOWN Reason="PSU dead"
    PartitionName=gpu Nodes=ALL Default=YES
    """)


def errors(exc: InventoryError) -> list[str]:
    return [f"{p.path}: {p.message}" for p in exc.problems if p.severity == "error"]


def test_parses_topology_and_nodes() -> None:
    fabric, warnings = import_slurm(TOPO, SLURM, name="lab")
    assert warnings == []
    assert fabric.node_names == tuple(f"n{i:02d}" for i in range(1, 9))
    assert fabric.group_names == ("s1", "s2", "top")
    assert list(fabric.node_gpus) == [8] * 6 + [4, 4]
    assert fabric.node_types[int(fabric.node_type[7])].gpu_model == "a100"
    assert fabric.node_types[int(fabric.node_type[7])].features == ("a100", "ib")
    assert fabric.node_types[int(fabric.node_type[0])].features == ("h100",)
    assert fabric.node_state[2] == NodeState.DOWN and fabric.node_reason[2] == "PSU dead"
    assert fabric.node_state[6] == NodeState.DRAIN and fabric.node_reason[6] == "bad fan"
    assert fabric.switches[0].link_speed == 100


@pytest.mark.parametrize("gres,expected", [
    ("gpu:8", (8, None)), ("gpu:h100:8", (8, "h100")), ("gpu:h100:4(S:0-1),gpu:h100:4(S:2-3)", (8, "h100")),
    ("nic:2,gpu:a100:2", (2, "a100")), ("mps:100", (0, None)), ("", (0, None)), ("gpu", (1, None)),
])
def test_gres_gpu_counts(gres: str, expected: tuple[int, str | None]) -> None:
    assert parse_gres_gpus(gres) == expected


@pytest.mark.parametrize("gres", ["gpu:-8", "gpu:h100:x", "gpu:h100:-1", "gpu:h100:8:2", "gpu::8"])
def test_unreadable_gpu_gres_is_an_error_not_a_model(gres: str) -> None:
    with pytest.raises(ValueError, match="expected gpu"):
        parse_gres_gpus(gres)
    assert parse_gres_gpus("gpu:1g.10gb:7") == (7, "1g.10gb")  # MIG profiles start with a digit


def test_unreadable_gres_names_the_line() -> None:
    problems: list = []
    conf = parse_slurm_conf("NodeName=n1 Gres=gpu:8\nNodeName=n2 Gres=gpu:-8\n", "slurm.conf", problems)
    assert [n.name for n in conf.nodes] == ["n1"]
    assert [(p.line, p.path) for p in problems] == [(2, "NodeName=n2")] and "gpu:-8" in problems[0].message


def test_line_continuation_and_escaped_hash() -> None:
    problems: list = []
    lines = logical_lines("A=1 \\\n  B=2\nC=x\\#y # note\n", problems, "f")
    assert [(cl.line, cl.pairs) for cl in lines] == [(1, [("a", "1"), ("b", "2")]), (3, [("c", "x#y")])]


def test_node_under_two_leaves_is_an_error() -> None:
    with pytest.raises(InventoryError) as info:
        import_slurm(TOPO.replace("n[05-08]", "n[04-08]"), SLURM)
    assert any("node 'n04' is also under 's1'" in e and "topology.conf:3" in e for e in errors(info.value))


def test_switch_naming_unknown_switch_is_an_error() -> None:
    with pytest.raises(InventoryError) as info:
        import_slurm(TOPO.replace("s[1-2]", "s[1-3]"), SLURM)
    assert any("names unknown switch 's3'" in e for e in errors(info.value))


def test_nodes_missing_from_slurm_conf_and_the_reverse() -> None:
    slurm = SLURM.replace("n[07-08] Gres", "n[07-09] Gres").replace("n[01-06]", "n[01-05]")
    with pytest.raises(InventoryError) as info:
        import_slurm(TOPO, slurm)
    errs = errors(info.value)
    assert any("nodes n06 are in topology.conf but not in slurm.conf" in e for e in errs)
    assert any("slurm.conf:" in e and "NodeName=n09" in e and "under no switch" in e for e in errs)


def test_gpuless_nodes_are_reported_and_left_out() -> None:
    slurm = SLURM + "NodeName=login1 CPUs=4 Gres=\n"
    fabric, warnings = import_slurm(TOPO.replace("n[05-08]", "n[05-08],login1"), slurm)
    assert "login1" not in fabric.node_index
    assert any("without GPUs" in w.message and "login1" in w.message for w in warnings)


def test_leaves_with_no_path_to_the_others() -> None:
    """Two trees: a warning as Slurm's (tests/test_disjoint_trees.py places on them); --add-root joins them."""
    topo = TOPO + "SwitchName=s3 Nodes=n[09-10]\n"
    slurm = SLURM + "NodeName=n[09-10] Gres=gpu:8\n"
    _, warnings = import_slurm(topo, slurm)
    assert any("2 disjoint trees" in w.message for w in warnings)
    fabric, warnings = import_slurm(topo, slurm, add_root="fabric")
    assert fabric.group_names[fabric.group_parent.tolist().index(-1)] == "fabric"
    assert any("joined under added root 'fabric'" in w.message for w in warnings)


def test_redundant_spines_are_merged_with_a_warning() -> None:
    topo = dedent("""
        SwitchName=l1 Nodes=n[01-04]
        SwitchName=l2 Nodes=n[05-08]
        SwitchName=spA Switches=l[1-2]
        SwitchName=spB Switches=l[1-2]
        """)
    fabric, warnings = import_slurm(topo, SLURM)
    assert fabric.group_names == ("l1", "l2", "spA")
    assert fabric.switches[fabric.switch_index["spA"]].members == ("spA", "spB")
    assert any("merged into one logical switch 'spA'" in w.message for w in warnings)


def test_child_listed_above_its_parent_is_dropped_with_a_warning() -> None:
    topo = dedent("""
        SwitchName=l1 Nodes=n[01-04]
        SwitchName=l2 Nodes=n[05-08]
        SwitchName=sp Switches=l[1-2],core
        SwitchName=core Switches=sp
        """)
    fabric, warnings = import_slurm(topo, SLURM)
    assert fabric.group_names[-1] == "core" and fabric.depth == 3
    assert any("lists 'core' as a child, but 'core' is above it" in w.message for w in warnings)


@pytest.mark.parametrize("topo,fragment", [
    ("SwitchName=s1 Nodes=n[01-04\n", "Nodes: malformed hostlist"),
    ("SwitchName=s1 Nodes=n[01-08] LinkSpeed=fast\n", "LinkSpeed must be a whole number"),
    ("SwitchName=s1 Nodes=n[01-08]\nSwitchName=s1 Nodes=n09\n", "duplicate switch (first at line 1)"),
    ("Switch=s1 Nodes=n[01-08]\n", "unknown topology.conf line starting switch="),
    ("SwitchName=s1 Nodes n[01-08]\n", "expected Key=Value"),
    ("BlockName=b1 Nodes=n[01-08]\n", "topology/block lines are not a tree"),
    ('SwitchName=s1 Nodes="n[01-08]\n', "cannot split line"),
    ("SwitchName=s1 Nodes=n[01-08] \\\n", "file ends inside a line continuation"),
    ("SwitchName=s1 Nodes=n[01-08] Switches=s2\nSwitchName=s2 Nodes=n09\n", "has both Nodes= and Switches="),
])
def test_malformed_topology_conf(topo: str, fragment: str) -> None:
    with pytest.raises(InventoryError) as info:
        import_slurm(topo, SLURM)
    assert any(fragment in e for e in errors(info.value)), errors(info.value)


def test_malformed_slurm_conf_lines_name_their_line() -> None:
    problems: list = []
    parse_slurm_conf("NodeName=n[1-2 Gres=gpu:8\nNodeName=a1 Gres=gpu:8\nNodeName=a1 Gres=gpu:8\n"
                     "DownNodes=zz State=DOWN\n", "slurm.conf", problems)
    assert [(p.line, p.message.split(":")[0]) for p in problems] == [
        (1, "malformed hostlist 'n[1-2'"), (3, "node 'a1' defined again (first at line 2)"),
        (4, "names unknown node 'zz'")]


def test_without_slurm_conf_needs_gpu_count() -> None:
    with pytest.raises(InventoryError) as info:
        import_slurm(TOPO, None)
    assert any("give slurm.conf or --gpus-per-node" in e for e in errors(info.value))
    fabric, warnings = import_slurm(TOPO, None, gpus_per_node=4, gpu_model="l40s")
    assert fabric.total_gpus == 32 and any("assumed to have 4 l40s GPUs" in w.message for w in warnings)


def test_unknown_keys_and_empty_switches_are_warned() -> None:
    topo = TOPO.replace("LinkSpeed=100", "LinkSpeed=100 Colour=red") + "SwitchName=spare\n"
    fabric, warnings = import_slurm(topo, SLURM)
    msgs = [(w.path, w.message) for w in warnings]
    assert any("SwitchName=s1" in p and "unknown key 'colour' ignored" in m for p, m in msgs)
    assert any("SwitchName=spare" in p and "has no nodes below it; ignored" in m for p, m in msgs)
    assert "spare" not in fabric.switch_index


@pytest.mark.parametrize("line", ['a=b c=d', 'Reason="bad fan" x=1', "a='x y' b", 'a=b\\ c d', '   ',
                                  'a="x\\"y" z', 'k="a"b"c"', "Nodes=n[1-4]\tSwitches=s[1-2]"])
def test_split_words_agrees_with_shell_rules(line: str) -> None:
    import shlex

    from topology.slurm_conf import split_words

    assert split_words(line) == shlex.split(line, posix=True)


@pytest.mark.parametrize("line", ['a="x', "a='x", "a=b\\"])
def test_split_words_refuses_open_quotes(line: str) -> None:
    from topology.slurm_conf import split_words

    with pytest.raises(ValueError, match="no closing quotation or a dangling escape"):
        split_words(line)


def test_a_two_megabyte_line_is_read() -> None:
    """shlex was quadratic in a token's length (a 2 MB Nodes= line never finished); this one is linear."""
    from topology.slurm_conf import split_words

    names = ",".join(f"n{i}" for i in range(300_000))
    assert split_words(f"SwitchName=s1 Nodes={names}") == ["SwitchName=s1", f"Nodes={names}"]
