"""Physical locations (issue 20, point 4): a node,rack,u,serial CSV into the inventory, kept by every import
and export, printed where a technician needs them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cli.main import main
from topology import InventoryError, dump_inventory, load_inventory_text
from topology.exporters import export
from topology.generate import design_for, generate
from topology.locations import parse_locations_csv, with_locations
from topology.nvidia_smi import with_domains
from topology.spec import Location
from topology.subset import first_nodes

TINY = generate(design_for("tiny"))
CSV = "node,rack,u,serial,row\ngpu001,A01,12,SN-1,3\ngpu002,A01,14,SN-2,3\np01-su01-r0,A01,42,SW-9,\n"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_csv_reads_by_header_name() -> None:
    locs = parse_locations_csv(CSV, "l.csv")
    assert locs["gpu001"] == Location("A01", "3", 12, "SN-1", None)
    assert locs["p01-su01-r0"].text() == "rack A01 U42 SN SW-9"
    assert parse_locations_csv("serial,name\nX,gpu003\n")["gpu003"] == Location(serial="X")


@pytest.mark.parametrize("text,fragment", [
    ("", "empty file"), ("rack,u\nA,1\n", "no node column"), ("node,rack,color\na,b,c\n", "unknown column(s) color"),
    ("node,u\ngpu001,twelve\n", "rack unit 'twelve' is not a whole number"),
    ("node,rack\ngpu001,A\ngpu001,B\n", "listed twice (first at line 2)"), ("node,rack\ngpu001\n", "expected 2 columns"),
    ("node,rack\n", "no rows"),
])
def test_a_bad_csv_names_the_line(text: str, fragment: str) -> None:
    with pytest.raises(InventoryError) as info:
        parse_locations_csv(text, "l.csv")
    assert fragment in info.value.render()


@given(st.text(max_size=300))
def test_any_text_is_read_or_refused_with_a_message(text: str) -> None:
    try:
        parse_locations_csv(text, "fuzz.csv")
    except InventoryError:
        pass


def test_every_import_and_export_keeps_them() -> None:
    f, _ = with_locations(TINY, parse_locations_csv(CSV), "l.csv")
    again, _ = load_inventory_text(dump_inventory(f), "again")
    assert dict(again.locations) == dict(f.locations) and again.where("gpu002") == " (row 3 rack A01 U14 SN SN-2)"
    assert dict(first_nodes(again, 4).locations) == dict(f.locations)
    domains, _ = with_domains(again, {"1": ["gpu001", "gpu002"]}, "c.csv")
    assert dict(domains.locations) == dict(f.locations)
    assert json.loads(export(again, "json"))["locations"]["gpu001"] == {"rack": "A01", "row": "3", "u": 12,
                                                                         "serial": "SN-1"}
    with pytest.raises(InventoryError) as info:
        with_locations(TINY, {"nowhere": Location("A")}, "l.csv")
    assert "names 'nowhere', which is neither a node nor a switch" in info.value.render()


def test_show_replace_and_status_print_them(tmp_path: Path, capsys) -> None:
    csv = tmp_path / "l.csv"
    csv.write_text(CSV)
    inv = tmp_path / "inv.yaml"
    code, _, err = run(capsys, "topology", "import", "--from", "locations", str(csv), "--inventory", "preset:tiny",
                       "-o", str(inv))
    assert code == 0, err
    code, out, _ = run(capsys, "topology", "show", str(inv))
    assert "physical locations (rack, U, serial): 2 of 16 nodes, 1 switches" in out
    plan = tmp_path / "plan.json"
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text("jobs:\n  - {id: j1, gpus: 16}\n")
    assert main(["plan", "--inventory", str(inv), "--jobs", str(jobs), "--format", "json", "-o", str(plan)]) == 0
    capsys.readouterr()
    code, out, err = run(capsys, "replace", "--inventory", str(inv), "--job", "j1", "--plan", str(plan),
                         "--failed", "gpu001")
    assert code == 0, err
    assert "gpu001 (row 3 rack A01 U12 SN SN-1) -> " in out
    snap = tmp_path / "now.json"
    snap.write_text(json.dumps({"schema": "placer.plan/v1", "fabric": "tiny", "placements": [],
                                "down_nodes": [{"node": "gpu002", "state": "down"}], "summary": {}}))
    code, out, _ = run(capsys, "status", "--inventory", str(inv), "--state", str(snap))
    assert code == 0 and "down or drained: gpu002 (row 3 rack A01 U14 SN SN-2)" in out


def test_a_locations_csv_with_any_import(tmp_path: Path, capsys) -> None:
    topo, nodes, csv = tmp_path / "topology.conf", tmp_path / "nodes.conf", tmp_path / "l.csv"
    topo.write_text(export(TINY, "slurm-tree"))
    nodes.write_text(export(TINY, "slurm-nodes"))
    csv.write_text("node,rack\ngpu001,B07\n")
    inv = tmp_path / "inv.yaml"
    code, _, err = run(capsys, "topology", "import", "--from", "slurm", "--topology-conf", str(topo), "--slurm-conf",
                       str(nodes), "--locations", str(csv), "-o", str(inv))
    assert code == 0, err
    assert "locations:\n  gpu001: {rack: B07}" in inv.read_text()
