"""`placer status` (issue 20, point 1): worked by hand on the tiny preset.

    tiny: p01-spine over p01-su01 (gpu001-004) and p01-su02 (gpu005-008); p02-spine over p02-su01
    (gpu009-012) and p02-su02 (gpu013-016); 8 GPUs a node.
    State: gpu001-005 busy, gpu006 with 5 GPUs busy (3 free: stranded), gpu016 drained.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cli.main import main
from placer.index import index_for
from placer.status import fabric_status
from topology import ClusterState
from topology.generate import design_for, generate

FABRIC = generate(design_for("tiny"))
IX = index_for(FABRIC)


def state() -> ClusterState:
    s = ClusterState(FABRIC)
    for n in range(5):
        s.allocate(n, list(range(8)))
    s.allocate(5, list(range(5)))
    s.set_usable(15, False)
    return s


def test_tiers_free_and_stranded_by_hand() -> None:
    st_ = fabric_status(IX, state())
    assert (st_.total_gpus, st_.usable_gpus, st_.free_gpus, st_.stranded_gpus) == (128, 120, 75, 3)
    assert (st_.whole_free_nodes, st_.unusable_nodes) == (9, 1)
    got = [(t.tier, t.blocks, t.largest_gpus, t.where, t.whole_free_nodes_max) for t in st_.tiers]
    assert got == [("node", 15, 8, "gpu007", 1), ("leaf", 4, 32, "p02-su01", 4), ("spine", 2, 56, "p02-spine", 7),
                   ("core", 1, 72, "core", 9), ("all", 1, 72, "the fabric", 9)]
    leaf = {lf["leaf"]: lf for lf in st_.leaves}
    assert leaf["p01-su02"] == {"leaf": "p01-su02", "gpus": 32, "usable_gpus": 32, "free_gpus": 19,
                                "whole_free_nodes": 2}
    assert leaf["p02-su02"]["usable_gpus"] == 24


def test_a_partition_is_its_own_fabric() -> None:
    mask = np.zeros(FABRIC.n_nodes, dtype=bool)
    mask[:8] = True
    p = fabric_status(IX, state(), mask)
    assert (p.free_gpus, p.stranded_gpus, p.whole_free_nodes) == (19, 3, 2)
    assert [(t.tier, t.largest_gpus) for t in p.tiers] == [("node", 8), ("leaf", 16), ("spine", 16), ("core", 16),
                                                           ("all", 16)]


def test_when_nothing_is_free_nothing_fits() -> None:
    s = ClusterState(FABRIC)
    for n in range(FABRIC.n_nodes):
        s.allocate(n, list(range(8)))
    got = fabric_status(IX, s)
    assert got.free_gpus == 0 and all(t.largest_gpus == 0 and t.where is None for t in got.tiers)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 8), min_size=16, max_size=16), st.lists(st.booleans(), min_size=16, max_size=16))
def test_the_largest_job_of_a_tier_really_fits_and_one_more_node_would_not(busy: list[int], up: list[bool]) -> None:
    """Checked against a plain count: the largest job within one block is what its whole free nodes (or one
    node's free GPUs) hold, and no block of the tier holds more."""
    s = ClusterState(FABRIC)
    for n, k in enumerate(busy):
        if k:
            s.allocate(n, list(range(k)))
        if not up[n]:
            s.set_usable(n, False)
    got = fabric_status(IX, s)
    whole = [up[n] and busy[n] == 0 for n in range(16)]
    single = max((8 - busy[n] for n in range(16) if up[n]), default=0)
    for t in got.tiers[1:]:
        blocks: dict[int, int] = {}
        for n in range(16):
            leaf = int(FABRIC.node_leaf[n])
            b = 0 if t.level is None else int(IX.anc[t.level][leaf])
            blocks[b] = blocks.get(b, 0) + whole[n]
        assert t.largest_gpus == max(single, 8 * max(blocks.values()))
    assert got.stranded_gpus == sum(8 - busy[n] for n in range(16) if up[n] and 0 < busy[n] < 8)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(tmp_path: Path) -> Path:
    """A snapshot document of the state above, with two partitions, as `placer slurm snapshot` writes it."""
    doc = {"schema": "placer.plan/v1", "fabric": "tiny", "placements": [
        {"job": "10", "status": "placed", "gpus": 40, "nodes": [f"gpu00{i}" for i in range(1, 6)],
         "gpu_ids": {f"gpu00{i}": list(range(8)) for i in range(1, 6)}, "end": 1_900_000_000.0},
        {"job": "11", "status": "placed", "gpus": 5, "nodes": ["gpu006"], "gpu_ids": {"gpu006": [0, 1, 2, 3, 4]}}],
        "down_nodes": [{"node": "gpu016", "state": "drain", "reason": "fan"}],
        "partitions": {"small": "gpu[001-008]", "all": "gpu[001-016]"}, "summary": {}}
    path = tmp_path / "now.json"
    path.write_text(json.dumps(doc))
    return path


def test_status_offline_text_json_and_plot(tmp_path: Path, capsys) -> None:
    snap = snapshot(tmp_path)
    code, out, err = run(capsys, "status", "--inventory", "preset:tiny", "--state", str(snap))
    assert code == 0, err
    assert "75 of 120 usable GPUs free (128 in all); 3 stranded on partly used nodes; 9 whole free nodes" in out
    assert "p01-spine █▄   p02-spine ··" in out  # the drained node is not usable: its leaf shows its free GPUs
    assert "partition small: 19 of 64 usable GPUs free, 3 stranded; largest job now 16 GPUs within a leaf" in out
    code, out, err = run(capsys, "status", "--inventory", "preset:tiny", "--state", str(snap), "--format", "json",
                         "--plot", str(tmp_path / "heat.png"))
    assert code == 0, err
    doc = json.loads(out)
    assert doc["stranded_gpus"] == 3 and doc["partitions"]["small"]["free_gpus"] == 19
    assert [t["largest_gpus"] for t in doc["tiers"]] == [8, 32, 56, 72, 72]
    assert (tmp_path / "heat.png").read_bytes()[:4] == b"\x89PNG"


def test_status_with_a_bad_snapshot_is_an_input_error(tmp_path: Path, capsys) -> None:
    snap = snapshot(tmp_path)
    snap.write_text(snap.read_text().replace('"gpu[001-008]"', '"gpu[001-"'))
    code, _, err = run(capsys, "status", "--inventory", "preset:tiny", "--state", str(snap))
    assert code == 2 and "partitions" in err and "Traceback" not in err


def test_watch_refreshes_until_interrupted(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """--watch reads the state again each time (here the snapshot file changes between two views) until Ctrl-C."""
    import cli.status_cmd as status_cmd

    snap = snapshot(tmp_path)
    views = []

    def sleep(_: float) -> None:
        views.append(1)
        if len(views) == 2:
            raise KeyboardInterrupt
        snap.write_text(snap.read_text().replace('"gpu006": [0, 1, 2, 3, 4]', '"gpu006": [0]'))

    monkeypatch.setattr(status_cmd.time, "sleep", sleep)
    monkeypatch.setattr(status_cmd.click, "clear", lambda: None)
    code = main(["status", "--inventory", "preset:tiny", "--state", str(snap), "--watch", "1"])
    out, err = capsys.readouterr()
    assert code == 0, err  # Ctrl-C ends a watch: no error
    assert "3 stranded on partly used nodes" in out and "7 stranded on partly used nodes" in out


def test_live_status_counts_a_reservations_nodes_out_while_it_is_active() -> None:
    """The state above, live, with Slurm's reservation `maint` on leaf p02-su01 now (gpu[009-012]): jobs
    outside it cannot start there, so its 32 GPUs are not counted free (75 - 32) and it is named; the
    largest job within a leaf is then 24 GPUs (p01-su02's 19 free and p02-su02's 24). A reservation to
    come or past changes nothing; the down node is listed alone."""
    import time

    from cli.cluster_view import ClusterView
    from cli.status_cmd import render_status, status_data
    from plugins.backend import SlurmReservation

    now = time.time()
    nodes = tuple(f"gpu{i:03d}" for i in range(9, 13))
    for resv, free, leaf_max in (((SlurmReservation("maint", nodes, now - 60, now + 600),), 43, 24),
                                 ((SlurmReservation("later", nodes, now + 600, now + 1200),
                                   SlurmReservation("past", nodes, now - 1200, now - 600)), 75, 32)):
        view = ClusterView(FABRIC, state(), "slurm (fake)", reservations=resv)
        data = status_data(view)
        tiers = {t["tier"]: t for t in data["tiers"]}
        assert (data["free_gpus"], tiers["leaf"]["largest_gpus"]) == (free, leaf_max), resv
        assert [d["node"] for d in data["down_or_drained"]] == ["gpu016"]
        text = render_status(view, data)
        assert ("in Slurm reservations now (not counted free): maint gpu[009-012]" in text) == (free == 43), text
        assert "; 1 nodes down or drained" in text
