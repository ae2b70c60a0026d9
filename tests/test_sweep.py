"""`placer simulate --sweep`: each policy over its waiting knob, the dominance verdict, the PNG, the pool.

The hand-checked case of tests/test_simulate.py: a, b, c take three nodes, b ends at 3, the pair comes at
4 and could start at once on two leaves, or at 10 (when a and c end) on one. Placer's hold of 60 s waits
for the leaf (1 of 1 multi-node job at the bound, mean wait (0+0+0+6)/4 = 1.5 s); first-fit with Slurm's
--switches=1@60 too (the same point); with no wait both start at once on two leaves (0%, 0 s).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main
from placer.sim.sweep import SweepRow, dominates
from topology import dump_inventory

from .test_simulate import FABRIC

TRACE = "job_id,submit_time,duration,gpus\na,0,10,8\nb,0,3,8\nc,0,10,8\npair,4,5,16\n"


def _files(tmp_path: Path) -> tuple[Path, Path, Path]:
    inv = tmp_path / "inv.yaml"
    inv.write_text(dump_inventory(FABRIC))
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    one.write_text(TRACE)
    two.write_text(TRACE.replace("pair,4,5,16", "pair,4,5,8"))  # no multi-node job: nothing to trade
    return inv, one, two


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sweep_runs_every_policy_over_its_knob_and_draws_each_stream(capsys, tmp_path: Path, workers: str) -> None:
    inv, one, two = _files(tmp_path)
    code = main(["simulate", "--inventory", str(inv), "--trace", str(one), "--trace", str(two), "--sweep",
                 "--knobs", "60,0", "--policy", "placer,first-fit", "--workers", workers,
                 "--plot", str(tmp_path / "png"), "--format", "json"])
    assert code == 0, capsys.readouterr().err
    doc = json.loads(capsys.readouterr().out)
    assert doc["knobs_s"] == [0, 60] and [s["trace"] for s in doc["streams"]] == [str(one), str(two)]
    rows = {(r["policy"], r["knob_s"]): r for r in doc["streams"][0]["rows"]}
    assert set(rows) == {("placer", 0), ("placer", 60), ("first-fit", 0), ("first-fit", 60)}
    for policy in ("placer", "first-fit"):
        assert (rows[policy, 60]["at_leaf_lower_bound"], rows[policy, 60]["mean_wait_s"]) == (1.0, 1.5)
        assert (rows[policy, 0]["at_leaf_lower_bound"], rows[policy, 0]["mean_wait_s"]) == (0.0, 0.0)
        # the pair is a short multi-node job: the wait the hold cost it, shown beside the mean
        assert (rows[policy, 60]["short_multi_p95_wait_s"], rows[policy, 0]["short_multi_p95_wait_s"]) == (6.0, 0.0)
    # no multi-node job in the second stream: nothing to measure, said as null (not 0 s)
    assert {r["short_multi_p95_wait_s"] for r in doc["streams"][1]["rows"]} == {None}
    assert doc["streams"][0]["uncovered"] == {"first-fit": []}
    for s in doc["streams"]:
        assert Path(s["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == ["sweep-one.png", "sweep-two.png"]


def test_sweep_text_says_whether_placer_covers_each_baseline(capsys, tmp_path: Path) -> None:
    inv, one, _ = _files(tmp_path)
    code = main(["simulate", "--inventory", str(inv), "--trace", str(one), "--sweep", "--knobs", "0,60",
                 "--policy", "placer,slurm-tree", "--workers", "1", "--plot", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and "placer's curve above slurm-tree's" in out
    assert out.count("placer ") == 2 and "60 s" in out
    assert "P95 WAIT MULTI <1H" in out and " 6 s" in out


@pytest.mark.parametrize("args, says", [
    (["--knobs", "0,ten"], "'ten' is not a number"),
    (["--knobs", "-5"], "not a wait between"),
    (["--out", "x.json"], "--out is for one replay"),
])
def test_sweep_refuses_bad_settings_with_a_message(capsys, tmp_path: Path, args: list[str], says: str) -> None:
    inv, one, _ = _files(tmp_path)
    code = main(["simulate", "--inventory", str(inv), "--trace", str(one), "--sweep", "--plot", str(tmp_path), *args])
    assert code == 2 and says in capsys.readouterr().err
    assert not list(tmp_path.glob("*.png")) and not (tmp_path / "x.json").exists()


def test_dominance_is_at_least_the_share_at_most_the_wait() -> None:
    def row(policy: str, share: float, wait: float) -> SweepRow:
        return SweepRow(policy, 0.0, {"at_leaf_lower_bound": share, "mean_wait_s": wait,
                                      "excess_cross_leaf_pairs": 0.0, "utilisation_busy_period": 0.0})

    rows = [row("placer", 0.9, 100), row("placer", 0.95, 200), row("slurm", 0.9, 100), row("slurm", 0.93, 150),
            row("slurm", 0.96, 150)]
    assert [(r.figures["at_leaf_lower_bound"], r.figures["mean_wait_s"]) for r in dominates(rows, "placer", "slurm")] \
        == [(0.93, 150), (0.96, 150)]
    assert dominates(rows[:3], "placer", "slurm") == []
