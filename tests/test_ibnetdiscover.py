"""ibnetdiscover dumps, nvidia-smi topo -m matrices and NVLink clique CSVs."""
from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main
from topology import InventoryError, load_inventory_text
from topology.exporters import export
from topology.generate import design_for, generate
from topology.ibnetdiscover import ImportOptions, import_ibnetdiscover, parse_dump, parse_node_map
from topology.nvidia_smi import node_type_from_topo, parse_clique_csv
from topology.slurm_conf import import_slurm

from .conftest import shared_file

DATA = Path(__file__).parent / "data" / "ibnet"
RAILS = (DATA / "rails-director.out").read_text()


def tree_shape(f) -> list:
    """The placement tree by node sets, names aside."""
    under: dict[int, set[str]] = {}
    for n in range(f.n_nodes):
        for g in f.group_ancestors(int(f.node_leaf[n])):
            under.setdefault(g, set()).add(f.node_names[n])
    return sorted((int(f.group_level[g]), sorted(s)) for g, s in under.items())


def msgs(problems) -> str:
    return " | ".join(p.message for p in problems)


def test_rails_director_sharp_and_default_names() -> None:
    f, warnings = import_ibnetdiscover(RAILS, ImportOptions(host_regex=r"^h\d"), "rails")
    text = msgs(warnings)
    assert f.node_names == ("h1", "h2", "h3", "h4")
    assert f.rails == 2 and f.n_leaves == 2 and f.depth == 2
    assert "director chassis: 3 switch ASICs with system image GUID 0xaaaa000000000001 taken as one switch" in text
    assert "1 SHARP aggregation node(s) ignored" in text
    assert "1 adapter(s) still carry a default description, so their host is unknown: H-cccc000000000042" in text
    assert "1 adapter(s) left out by the host filter" in text  # stor1
    assert "node 'h2' - 'su1-r1' runs 1xNDR, its peers 4xNDR: slower or narrower" in text
    # h4 lost its rail-1 adapter's name but still joins its unit
    assert "join their peers' scalable unit: h4" in text
    assert sorted(f.node_names[n] for n in f.nodes_of_leaf(int(f.node_leaf[f.node_index["h4"]]))) == ["h3", "h4"]
    assert f.group_names[-1] == "dir1"
    assert {s.name: s.rail for s in f.switches if s.nodes} == {"su1-r0": 0, "su1-r1": 1, "su2-r0": 0, "su2-r1": 1}


def test_node_map_and_keep_unnamed() -> None:
    f, _ = import_ibnetdiscover(RAILS, ImportOptions(host_regex=r"^h\d", node_map={"cccc000000000042": "h4"}), "r")
    assert f.node_switches[f.node_index["h4"]] == f.node_switches[f.node_index["h3"]]  # both rails now
    g, w = import_ibnetdiscover(RAILS, ImportOptions(keep_unnamed=True, hosts={"h1", "h2", "h3", "h4",
                                                                                "H-cccc000000000042"}), "r")
    assert "H-cccc000000000042" in g.node_index and "kept as nodes named by GUID" in msgs(w)


@pytest.mark.parametrize("text,line,fragment", [
    ('[1]\t"S-1"[1]\t\t# "x" lid 1 4xNDR\n', 1, "port line outside a Switch/Ca block"),
    ('Switch\t2 "S-1"\t\t# "a" enhanced port 0 lid 1 lmc 0\n[1]\tgarbage here\n', 2, "unreadable switch port line"),
    ('Switch\t2 "S-1"\t\t# "a"\n\nSwitch\t2 "S-1"\t\t# "a"\n', 3, "device S-1 appears twice (first at line 1)"),
    ("vendid=0x1\nthis is not a dump\n", 2, "unexpected line"),
])
def test_malformed_dumps_name_the_line(text: str, line: int, fragment: str) -> None:
    problems = parse_dump(text).problems
    assert problems and problems[0].line == line and fragment in problems[0].message
    with pytest.raises(InventoryError):
        import_ibnetdiscover(text, ImportOptions(), "bad")


def test_a_dump_saved_from_a_terminal_imports_with_one_warning() -> None:
    """BOM, CRLF, the shell prompt and command before the dump and a prompt after it (issue 19): the same
    fabric as the clean dump, and one warning naming the skipped lines."""
    clean, _ = import_ibnetdiscover(RAILS, ImportOptions(host_regex=r"^h\d"), "rails")
    saved = "\ufeff[root@head01 fabric]# ibnetdiscover\r\n" + RAILS.replace("\n", "\r\n") + "[root@head01 fabric]# \r\n"
    f, warnings = import_ibnetdiscover(saved, ImportOptions(host_regex=r"^h\d"), "saved")
    assert tree_shape(f) == tree_shape(clean) and f.rails == clean.rails
    said = [w.message for w in warnings if "shell prompt" in w.message]
    last = len(saved.splitlines())
    assert said == [f"skipped 2 line(s) that are a shell prompt or command, not dump output: line 1, {last}"]
    for prompt in ("admin@login1:~$ sudo ibnetdiscover", "$ ibnetdiscover", "% ibnetdiscover"):
        assert "shell prompt" in msgs(parse_dump(prompt + "\n" + RAILS).problems)


def test_ibdiagnet_port_syntax_reads_as_ibnetdiscover() -> None:
    """ibdiagnet repeats the port in parentheses and puts the peer's GUID after its port."""
    text = ('Switch\t36 "S-0002c90300617c9a"\t\t# "Quantum Mellanox Technologies" base port 0 lid 784 lmc 0\n'
            '[1](1) "H-0002c903000a0b0c"[1](0002c903000a0b0c)      # "gpu0001 HCA-2" lid 791 4xHDR\n\n'
            'Ca\t1 "H-0002c903000a0b0c"\t\t# "gpu0001 HCA-2"\n'
            '[1](0002c903000a0b0c) "S-0002c90300617c9a"[1] # lid 791 lmc 0 "Quantum Mellanox Technologies" '
            'lid 784 4xHDR\n')
    dump = parse_dump(text)
    assert not dump.problems
    assert dump.devices["S-0002c90300617c9a"].ports[1] == ("H-0002c903000a0b0c", 1, "4xHDR")
    assert dump.devices["H-0002c903000a0b0c"].ports[1] == ("S-0002c90300617c9a", 1, "4xHDR")


def test_ibdiagnet_topology_file_gives_the_same_fabric_as_ibnetdiscover() -> None:
    """The same fabric written by ibdiagnet (header, doubled ports, peer GUIDs, spaces): hosts, rails, the
    director, SHARP left out and the default-named adapter reported, exactly as from ibnetdiscover."""
    text = (DATA / "rails-director.ibdiagnet").read_text()
    assert parse_dump(text).fmt == "ibdiagnet" and parse_dump(RAILS).fmt == "ibnetdiscover"
    opt = ImportOptions(host_regex=r"^h\d")
    a, wa = import_ibnetdiscover(RAILS, opt, "ibnet")
    b, wb = import_ibnetdiscover(text, opt, "ibdiag")
    assert tree_shape(a) == tree_shape(b) and a.node_names == b.node_names and a.rails == b.rails == 2
    assert [s.name for s in a.switches] == [s.name for s in b.switches]
    assert msgs(wa) == msgs(wb) and "SHARP" in msgs(wb) and "default description" in msgs(wb)


def test_no_compute_adapter_left() -> None:
    with pytest.raises(InventoryError) as info:
        import_ibnetdiscover(RAILS, ImportOptions(host_regex="^nomatch$"), "r")
    assert "no compute adapter left" in info.value.render()


def test_synthetic_dump_round_trip() -> None:
    """A generated fabric written as a dump and read back: same units, same tree (by node sets), rails."""
    f = generate(design_for("tiny", pods=2, sus_per_pod=3, nodes_per_su=4, rails=4))
    g, _ = import_ibnetdiscover(export(f, "ibnetdiscover"), ImportOptions(), "synthetic")
    assert tree_shape(g) == tree_shape(f) and g.rails == 4 and g.n_nodes == f.n_nodes


def test_real_dgx_h100_dump() -> None:
    path = shared_file("fabrics/topograph-dgx-h100/example.out")
    f, warnings = import_ibnetdiscover(path.read_text(), ImportOptions(host_regex="dgx"), str(path))
    leaves = [s for s in f.switches if s.nodes]
    assert f.n_nodes == 119
    assert len(leaves) == 31 and sum(len(s.members) for s in f.switches if not s.nodes) == 9
    assert min(len(s.nodes) for s in leaves) >= 10 and max(len(s.nodes) for s in leaves) <= 18
    assert f.rails == 8 and f.depth == 2
    text = msgs(warnings)
    assert "40 SHARP aggregation node(s) ignored" in text
    assert "69 adapter(s) still carry a default description" in text
    assert all(s.link_speed == 400 for s in leaves)


def test_real_degenerate_dump_is_a_clear_error(capsys) -> None:
    path = shared_file("fabrics/topograph-dgx-h100/example-bad.out")
    code = main(["topology", "import", "--from", "ibnetdiscover", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and "the dump has no switch, so there is no fabric to build (1 adapter(s): " \
                          "dgx-gb200-n01-c1 HCA-1)" in err and "Traceback" not in err


def test_real_x5_dump_matches_the_sites_topology_conf() -> None:
    dump = shared_file("fabrics/psmn-x5/X5.topofile")
    names = parse_node_map(shared_file("fabrics/psmn-x5/X5.map").read_text(), "X5.map")
    f, warnings = import_ibnetdiscover(dump.read_text(), ImportOptions(node_map=names, keep_unnamed=True), "X5")
    assert f.n_nodes == 89 and len(f.switches) + sum(len(s.members) - 1 for s in f.switches) == 11
    assert f.depth == 3 and f.n_leaves == 6
    site, _ = import_slurm(shared_file("fabrics/psmn-x5/X5.topology.conf").read_text(), None, gpus_per_node=8)
    ours = sorted(sorted(f.node_names[n] for n in f.nodes_of_leaf(l)) for l in range(f.n_leaves))
    theirs = sorted(sorted(site.node_names[n] for n in site.nodes_of_leaf(l)) for l in range(site.n_leaves))
    assert ours == theirs
    assert "runs 4xDDR, its peers 4xQDR" in msgs(warnings)  # the DDR adapters on QDR switches
    assert len(f.degraded_links) == 23 and all(ln.link == "4xDDR" and ln.usual == "4xQDR" for ln in f.degraded_links)


def test_imported_inventory_works_everywhere(tmp_path: Path, capsys) -> None:
    inv = tmp_path / "inv.yaml"
    dump = tmp_path / "d.out"
    dump.write_text(RAILS)
    assert main(["topology", "import", "--from", "ibnetdiscover", str(dump), "--hosts", "h[1-4]", "-o", str(inv)]) == 0
    assert main(["topology", "validate", str(inv)]) == 0
    assert main(["topology", "export", str(inv), "--format", "slurm-tree"]) == 0
    jobs = tmp_path / "j.yaml"
    jobs.write_text("- {job_id: a, gpus: 16}\n")
    assert main(["plan", "--inventory", str(inv), "--jobs", str(jobs)]) == 0
    out = capsys.readouterr().out
    assert "SwitchName=su1 Nodes=h[1-2]" in out and "placed" in out


# -- nvidia-smi topo -m -------------------------------------------------------------------------------
DGX = """\tGPU0\tGPU1\tGPU2\tGPU3\tNIC0\tCPU Affinity\tNUMA Affinity\tGPU NUMA ID
GPU0\t X \tNV18\tNV18\tNV18\tPXB\t0-55\t0\t\tN/A
GPU1\tNV18\t X \tNV18\tNV18\tSYS\t0-55\t0\t\tN/A
GPU2\tNV18\tNV18\t X \tNV18\tSYS\t56-111\t1\t\tN/A
GPU3\tNV18\tNV18\tNV18\t X \tSYS\t56-111\t1\t\tN/A
NIC0\tPXB\tSYS\tSYS\tSYS\t X

Legend:
  X    = Self
  NV#  = Connection traversing a bonded set of # NVLinks
NIC Legend:
  NIC0: mlx5_0
"""
PAIRS = """\tGPU0\tGPU1\tGPU2\tGPU3\tCPU Affinity
GPU0\t X \tNV4\tSYS\tSYS\t0-31
GPU1\tNV4\t X \tSYS\tSYS\t0-31
GPU2\tSYS\tSYS\t X \tNV4\t32-63
GPU3\tSYS\tSYS\tNV4\t X \t32-63
"""


def test_nvidia_smi_topo_all_to_all_and_pairs() -> None:
    dgx = node_type_from_topo(DGX, "dgx", "h100")
    assert dgx.gpus == 4 and dgx.nvlink_islands == () and dgx.nvlinks[0] == (-1, 18, 18, 18)
    pairs = node_type_from_topo(PAIRS, "l40s", "l40s")
    assert pairs.nvlink_islands == ((0, 1), (2, 3)) and pairs.nvlinks[2] == (0, 0, -1, 4)


@pytest.mark.parametrize("text,fragment", [
    ("nothing useful\n", "no header row with GPU0"),
    (PAIRS.replace("NV4\t X", "NVX\t X", 1), "unknown link kind 'NVX'"),
    ("\n".join(PAIRS.splitlines()[:3]) + "\n", "no rows for GPU2, GPU3"),
    (PAIRS.replace("GPU1\tNV4", "GPU1\tNV2"), "asymmetric"),
])
def test_nvidia_smi_topo_errors(text: str, fragment: str) -> None:
    with pytest.raises(InventoryError) as info:
        node_type_from_topo(text, "x")
    assert fragment in info.value.render()


def test_nvidia_smi_topo_into_an_inventory_and_gres(tmp_path: Path, capsys) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text("version: 1\nnode_types: {l40s: {gpus: 4, gpu_model: l40s}}\ndefaults: {type: l40s}\n"
                   "switches:\n  - {name: top}\n  - {name: leaf, parent: top, nodes: 'p[1-2]'}\n")
    topo = tmp_path / "topo.txt"
    topo.write_text(PAIRS)
    out = tmp_path / "new.yaml"
    assert main(["topology", "import", "--from", "nvidia-smi-topo", str(topo), "--node-model", "l40s",
                 "--inventory", str(inv), "-o", str(out)]) == 0
    f, _ = load_inventory_text(out.read_text())
    assert f.node_types[0].nvlink_islands == ((0, 1), (2, 3))
    gres = export(f, "gres")
    assert "NodeName=p[1-2] Name=gpu Type=l40s File=/dev/nvidia0 Links=-1,4,0,0" in gres
    assert main(["topology", "import", "--from", "nvidia-smi-topo", str(topo), "--node-model", "new"]) == 0
    assert "nvlinks:" in capsys.readouterr().out
    code = main(["topology", "import", "--from", "nvidia-smi-topo", str(tmp_path / "topo.txt"), "--node-model",
                 "l40s", "--inventory", "preset:superpod"])
    assert code == 0  # a new type next to the preset's: warned, not an error


def test_clique_csv_becomes_nvlink_domains(tmp_path: Path) -> None:
    csv_file = tmp_path / "cliques.csv"
    csv_file.write_text("node,clique_id\ngpu0001,7\ngpu0002,7\ngpu0003,8\n")
    out = tmp_path / "out.yaml"
    assert main(["topology", "import", "--from", "nvl-domains", str(csv_file), "--inventory", "preset:gb200-nvl72",
                 "-o", str(out)]) == 0
    f, _ = load_inventory_text(out.read_text())
    assert f.domain_names == ("clique-7", "clique-8")
    assert "BlockName=clique-7 Nodes=gpu[0001-0002]" in export(f, "slurm-block")
    with pytest.raises(InventoryError) as info:
        parse_clique_csv("node,clique_id\na,1\na,2\n")
    assert "node listed twice" in info.value.render()
    csv_file.write_text("node,clique_id\ngpu0001,1\ngpu0200,1\n")  # two leaves apart
    assert main(["topology", "import", "--from", "nvl-domains", str(csv_file), "--inventory", "preset:gb200-nvl72",
                 "-o", str(out)]) == 2


def test_a_dump_of_two_fabrics_with_no_common_switch_imports_as_two_trees() -> None:
    """Two leaf switches never cabled together: accepted with one warning naming both (issue 19)."""
    text = "".join(
        f'Switch\t4 "S-{s:016x}"\t\t# "MF0;leaf{s}:MQM9700/U1" enhanced port 0 lid {s} lmc 0\n'
        + "".join(f'[{p}]\t"H-{s * 16 + p:016x}"[1]\t\t# "n{s}{p} mlx5_0" lid {s * 16 + p} 4xNDR\n' for p in (1, 2))
        + "\n" + "".join(f'Ca\t1 "H-{s * 16 + p:016x}"\t\t# "n{s}{p} mlx5_0"\n[1]({s * 16 + p:016x}) '
                         f'"S-{s:016x}"[{p}]\t\t# lid 1 lmc 0 "leaf" lid {s} 4xNDR\n\n' for p in (1, 2))
        for s in (1, 2))
    f, warnings = import_ibnetdiscover(text, ImportOptions(), "two")
    assert f.n_nodes == 4 and f.n_leaves == 2 and (f.group_parent < 0).sum() == 2
    said = [w.message for w in warnings if "disjoint" in w.message]
    assert len(said) == 1 and "'leaf1'" in said[0] and "'leaf2'" in said[0]
