"""Warnings grouped by kind: one line with a count and at most five examples, `-v` lists all, JSON gives
them all as data (issue 19, point 4)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cli.main import main
from topology.problems import Problem, kind_of, render_grouped
from topology.slurm_conf import import_slurm

HEAD = "version: 1\nname: t\nnode_types:\n  g8: {gpus: 8, gpu_model: h100}\ndefaults: {type: g8}\nswitches:\n" \
       "  - {name: top}\n  - {name: l1, parent: top, nodes: \"n[1-2]\"}\n"


def empty_switches(k: int) -> str:
    """An inventory with k switches holding neither nodes nor children: k warnings of one kind."""
    return HEAD + "".join(f"  - {{name: spare{i:02d}, parent: top}}\n" for i in range(k))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_one_line_per_kind_with_count_and_five_examples() -> None:
    ps = [Problem(f"switches[{i}]", f"switch 'sw{i}' has neither nodes nor child switches", "warning", i + 3)
          for i in range(8)]
    ps.append(Problem("", "a different thing", "warning"))
    lines = render_grouped(ps, "inv.yaml")
    assert len(lines) == 2
    assert lines[0] == ("inv.yaml: warning (8x): switch … has neither nodes nor child switches: 'sw0' (line 3), "
                        "'sw1' (line 4), 'sw2' (line 5), 'sw3' (line 6), 'sw4' (line 7) … and 3 more")
    assert lines[1] == "inv.yaml: warning: a different thing"
    assert render_grouped(ps, "inv.yaml", verbose=True) == [p.render("inv.yaml") for p in ps]


@given(st.lists(st.tuples(st.sampled_from(["warning", "error"]), st.sampled_from(["a 'x'", "a 'y'", "b 1", "b 22",
                                                                                   "c"])), max_size=40))
def test_grouping_loses_no_problem(items: list[tuple[str, str]]) -> None:
    """Every problem is counted in exactly one line: a full line, or a group's count."""
    ps = [Problem("", m, sev) for sev, m in items]  # type: ignore[arg-type]
    lines = render_grouped(ps)
    total = 0
    for line in lines:
        m = re.match(r"^(?:warning|error) \((\d+)x\): ", line)
        total += int(m.group(1)) if m else 1
    assert total == len(ps)
    assert len(lines) == len({(p.severity, kind_of(p)) for p in ps})  # min_group 2: one line per kind


def test_validate_groups_warnings_and_lists_all_with_v(tmp_path: Path, capsys) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text(empty_switches(8))
    code, _, err = run(capsys, "topology", "validate", str(inv))
    said = [line for line in err.splitlines() if "neither nodes nor child switches" in line]
    assert code == 0 and len(said) == 1 and "(8x)" in said[0] and "… and 3 more" in said[0]
    code, _, err = run(capsys, "-v", "topology", "validate", str(inv))
    assert code == 0 and sum("neither nodes nor child switches" in line for line in err.splitlines()) == 8
    code, out, err = run(capsys, "topology", "validate", str(inv), "--format", "json")
    doc = json.loads(out)
    assert code == 0 and len(doc["warnings"]) == 8
    assert {w["kind"] for w in doc["warnings"]} == {"switch … has neither nodes nor child switches; ignored for "
                                                    "placement"}
    assert doc["warnings"][0]["path"] == "switches[2](spare00)" and doc["warnings"][0]["severity"] == "warning"


def test_many_errors_of_a_kind_are_grouped_a_few_print_in_full(tmp_path: Path, capsys) -> None:
    inv = tmp_path / "inv.yaml"
    dup = "nodes:\n" + "".join(f"  - {{names: \"n{i}\"}}\n  - {{names: \"n{i}\"}}\n" for i in (1, 2))
    inv.write_text(HEAD + dup)
    code, _, err = run(capsys, "topology", "validate", str(inv))
    assert code == 2 and sum("duplicate node" in line for line in err.splitlines()) == 2
    many = "nodes:\n" + "".join(f"  - {{names: \"n{i}\"}}\n  - {{names: \"n{i}\"}}\n" for i in range(1, 9))
    inv.write_text(HEAD.replace("n[1-2]", "n[1-8]") + many)
    code, _, err = run(capsys, "topology", "validate", str(inv))
    said = [line for line in err.splitlines() if "duplicate node" in line]
    assert code == 2 and len(said) == 1 and "error (8x)" in said[0] and "… and 3 more" in said[0]
    code, _, err = run(capsys, "-v", "topology", "validate", str(inv))
    assert sum("duplicate node" in line for line in err.splitlines()) == 8


def test_a_merge_of_seventy_switches_names_five() -> None:
    """Seventy redundant spines over two leaves: one warning, five names and '… and 65 more'."""
    topo = "SwitchName=l1 Nodes=n[01-02]\nSwitchName=l2 Nodes=n[03-04]\n" + "".join(
        f"SwitchName=sp{i:02d} Switches=l[1-2]\n" for i in range(70))
    _, warnings = import_slurm(topo, "NodeName=n[01-04] Gres=gpu:8\n")
    said = [w.message for w in warnings if "serve the same children" in w.message]
    assert len(said) == 1 and said[0].startswith("70 switches sp00, sp01, sp02, sp03, sp04 … and 65 more")

