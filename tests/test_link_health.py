"""Link health (issue 19, point 5): degraded links found in dumps, kept by the inventory, reported by show
and validate, weighed by placement; `placer topology diff` between two dumps or inventories."""
from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent

import pytest

from cli.main import main
from placer.engine import avoided_nodes, plan
from placer.jobs import JobRequest
from placer.types import PlannerConfig
from placer.validate import validate
from topology import ClusterState, InventoryError, dump_inventory, load_inventory_text
from topology.diff import diff_wiring, wiring_of_dump, wiring_of_fabric
from topology.ibnetdiscover import ImportOptions, import_ibnetdiscover, parse_dump
from topology.links import degraded, usual_link
from topology.spec import LinkSpec

DATA = Path(__file__).parent / "data" / "ibnet"
OLD, NEW = DATA / "rails-director.out", DATA / "rails-director-next.out"
HOSTS = ImportOptions(host_regex=r"^h\d")

INVENTORY = dedent("""\
    version: 1
    name: links
    node_types:
      g8: {gpus: 8, gpu_model: h100}
    defaults: {type: g8}
    switches:
      - {name: spine}
      - {name: la, parent: spine, nodes: "n[01-04]"}
      - {name: lb, parent: spine, nodes: "n[05-08]"}
    degraded_links:
      - {a: n01, b: la, link: 2xNDR, usual: 4xNDR}
    """)
FABRIC, WARNINGS = load_inventory_text(INVENTORY, "links.yaml")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("link,usual,worse", [("2xNDR", "4xNDR", True), ("4xHDR", "4xNDR", True),
                                              ("4xNDR", "4xNDR", False), ("8xNDR", "4xNDR", False),
                                              ("4xDDR", "4xQDR", True), ("", "4xNDR", False), ("4xNDR", None, False)])
def test_slower_or_narrower(link: str, usual: str | None, worse: bool) -> None:
    assert degraded(link, usual) is worse


def test_usual_link_is_the_most_common() -> None:
    assert usual_link(["4xNDR", "4xNDR", "2xNDR", "", "junk"]) == "4xNDR" and usual_link(["", "x"]) is None


def test_a_dump_finds_the_narrow_cable_and_the_inventory_keeps_it() -> None:
    f, warnings = import_ibnetdiscover(OLD.read_text(), HOSTS, "old")
    assert f.degraded_links == (LinkSpec("h2", "su1-r1", "1xNDR", "4xNDR"),)
    assert [f.node_names[n] for n in range(f.n_nodes) if f.behind_degraded()[n]] == ["h2"]
    assert any("node 'h2' - 'su1-r1' runs 1xNDR, its peers 4xNDR" in w.message for w in warnings)
    again, _ = load_inventory_text(dump_inventory(f), "again")
    assert [(x.a, x.b, x.link, x.usual) for x in again.degraded_links] == [("h2", "su1-r1", "1xNDR", "4xNDR")]
    assert again.behind_degraded().tolist() == f.behind_degraded().tolist()


def test_show_and_validate_report_degraded_links(tmp_path: Path, capsys) -> None:
    inv = tmp_path / "links.yaml"
    inv.write_text(INVENTORY)
    code, out, err = run(capsys, "topology", "show", str(inv))
    assert code == 0 and "degraded links: 1 slower or narrower than their peers; behind them: 1 node(s) (n01), " \
                          "1 switch(es) (la x1)" in out
    code, out, err = run(capsys, "topology", "validate", str(inv), "--format", "json")
    doc = json.loads(out)
    assert doc["summary"]["degraded_links"] == {"links": 1, "nodes": {"n01": 1}, "switches": {"la": 1}}
    assert any("runs 2xNDR, its peers 4xNDR" in w["message"] for w in doc["warnings"])


@pytest.mark.parametrize("entry,fragment", [
    ("{a: n01, b: nowhere, link: 2xNDR, usual: 4xNDR}", "names 'nowhere', which is neither a node nor a switch"),
    ("{a: n01, b: la, link: slow, usual: 4xNDR}", "link 'slow' is not a width and speed such as 4xNDR"),
    ("{a: n01, b: la, link: 2xNDR}", "missing usual"),
    ("{a: n01, b: la, link: 2xNDR, usual: 4xNDR, cost: 3}", "unknown key"),
])
def test_a_wrong_degraded_link_is_an_error_naming_it(entry: str, fragment: str) -> None:
    text = INVENTORY.replace("{a: n01, b: la, link: 2xNDR, usual: 4xNDR}", entry)
    with pytest.raises(InventoryError) as info:
        load_inventory_text(text, "bad.yaml")
    assert any(fragment in p.message and p.path.startswith("degraded_links[0]") for p in info.value.problems)


def place(gpus: int, mode: str, busy: tuple[str, ...] = ()) -> list[str]:
    st = ClusterState(FABRIC)
    for n in busy:
        st.allocate(FABRIC.node_index[n], list(range(8)))
    cfg = PlannerConfig(degraded_links=mode)  # type: ignore[arg-type]
    job = JobRequest("j", gpus)
    p = plan(FABRIC, st, [job], cfg).placements[0]
    assert validate(FABRIC, st, [job], [p], avoid_multi=avoided_nodes(FABRIC, cfg)) == []
    return sorted(p.nodes)


def test_a_degraded_link_moves_a_multi_node_job_off_the_node_behind_it() -> None:
    """Three nodes in leaf la: n01 (its cable at half width) is left out unless told to ignore it."""
    assert place(24, "weigh") == ["n02", "n03", "n04"]
    assert place(24, "avoid") == ["n02", "n03", "n04"]
    assert place(24, "ignore") == ["n01", "n02", "n03"]


def test_weigh_keeps_locality_first_avoid_never_uses_the_node() -> None:
    """With lb partly busy only la holds four nodes: weigh still takes it whole (locality first), avoid
    spans two leaves rather than use n01; a single-GPU job may use n01 under every mode."""
    assert place(32, "weigh", busy=("n05",)) == ["n01", "n02", "n03", "n04"]
    assert "n01" not in place(32, "avoid", busy=("n05",))
    assert place(8, "avoid", busy=("n02", "n03", "n04", "n05", "n06", "n07", "n08")) == ["n01"]


def test_plan_cli_takes_the_mode(tmp_path: Path, capsys) -> None:
    inv, jobs = tmp_path / "links.yaml", tmp_path / "jobs.yaml"
    inv.write_text(INVENTORY)
    jobs.write_text("jobs:\n  - {id: a, gpus: 24}\n")
    for mode, first in (("weigh", "n02"), ("ignore", "n01")):
        code, out, _ = run(capsys, "plan", "--inventory", str(inv), "--jobs", str(jobs), "--format", "json",
                           "--degraded-links", mode)
        assert code == 0 and sorted(json.loads(out)["placements"][0]["nodes"])[0] == first


def test_diff_of_two_dumps_names_exactly_the_changed_cables() -> None:
    d = diff_wiring(wiring_of_dump(parse_dump(OLD.read_text())), wiring_of_dump(parse_dump(NEW.read_text())))
    assert d.lost == ["h3 mlx5_0[1] - su2-r0[1] (4xNDR)", "stor1 mlx5_0[1] - su2-r0[3] (4xNDR)"]
    assert d.added == ["h3 mlx5_0[1] - su1-r0[4] (4xNDR)"]
    assert d.degraded == ["h1 mlx5_0[1] - su1-r0[1]: 4xNDR -> 2xNDR"]
    assert d.restored == ["h2 mlx5_1[1] - su1-r1[2]: 1xNDR -> 4xNDR"]
    assert d.moved == ["h3: su2-r0, su2-r1 -> su1-r0, su2-r1"]
    same = diff_wiring(wiring_of_dump(parse_dump(OLD.read_text())), wiring_of_dump(parse_dump(OLD.read_text())))
    assert same.empty()


def test_diff_of_two_inventories_at_their_level() -> None:
    old, _ = import_ibnetdiscover(OLD.read_text(), HOSTS, "old")
    new, _ = import_ibnetdiscover(NEW.read_text(), HOSTS, "new")
    d = diff_wiring(wiring_of_fabric(old), wiring_of_fabric(new))
    assert (d.lost, d.added) == (["h3 - su2-r0"], ["h3 - su1-r0"])
    assert d.degraded == ["h1 - su1-r0: as its peers -> 2xNDR"]
    assert d.restored == ["h2 - su1-r1: 1xNDR -> as its peers"]
    assert d.moved == ["h3: su2-r0, su2-r1 -> su1-r0, su2-r1"]


def test_diff_cli_dumps_inventories_and_mixed(tmp_path: Path, capsys) -> None:
    code, out, _ = run(capsys, "topology", "diff", str(OLD), str(NEW))
    assert code == 0 and out.startswith("cables lost: 2\n") and "nodes moved: 1" in out
    code, out, _ = run(capsys, "topology", "diff", str(OLD), str(OLD))
    assert code == 0 and out.startswith("no change")
    inv = tmp_path / "old.yaml"
    assert main(["topology", "import", "--from", "ibnetdiscover", str(OLD), "--host-regex", r"^h\d", "-o",
                 str(inv)]) == 0
    capsys.readouterr()
    code, out, _ = run(capsys, "topology", "diff", str(inv), str(NEW), "--host-regex", r"^h\d", "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["nodes_moved"] == ["h3: su2-r0, su2-r1 -> su1-r0, su2-r1"]
    assert doc["cables_lost"] == ["h3 - su2-r0"] and doc["links_degraded"] == ["h1 - su1-r0: as its peers -> 2xNDR"]
    bad = tmp_path / "bad.dump"
    bad.write_text('Switch 2 "S-1"\n[1] garbage\n')
    code, _, err = run(capsys, "topology", "diff", str(bad), str(OLD))
    assert code == 2 and "unreadable switch port line" in err
