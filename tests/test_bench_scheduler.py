"""bench/scheduler.py's bookkeeping (issue 18's benchmark): every SuperPOD seed asked for is run, and
baselines saved at one backfill depth are not reused at another (their figures move with it:
docs/benchmarks.md, "Backfill depth")."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import scheduler as bench  # noqa: E402  (bench/ is a directory of scripts, not a package)

from placer.sim.sweep import FIGURES, TAIL, SweepRow  # noqa: E402


def test_every_superpod_seed_given_is_a_stream() -> None:
    got = bench.streams(["superpod"], [1, 2])
    assert [name for name, _, _ in got] == ["superpod-seed1", "superpod-seed2"]
    (_, _, one), (_, _, two) = got
    assert len(one) == len(two) == 8000
    assert [j.gpus for j in one[:50]] != [j.gpus for j in two[:50]]


def _rows() -> list[SweepRow]:
    figures = {**{k: 1.0 for k in FIGURES}, TAIL: 2.0}
    usage = np.array([[0.0, 10.0, 8.0]])
    return [SweepRow("best-fit", 0.0, figures, usage), SweepRow("placer", 14400.0, figures, usage)]


def test_baselines_are_reused_only_at_their_own_backfill_depth(tmp_path: Path) -> None:
    bench._save(tmp_path, "s", _rows(), 500)
    again = bench._baselines(str(tmp_path), "s", 500)
    assert [(r.policy, r.knob) for r in again] == [("best-fit", 0.0)]  # placer's own rows are never reused
    with pytest.raises(SystemExit, match="backfill depth 500.*asks for 100"):
        bench._baselines(str(tmp_path), "s", 100)


def test_baselines_saved_before_the_depth_was_kept_count_as_100(tmp_path: Path) -> None:
    bench._save(tmp_path, "s", _rows(), 100)
    path = tmp_path / "sched-s-usage.npz"
    kept = dict(np.load(path))
    del kept[bench.DEPTH_KEY]
    np.savez_compressed(path, **kept)
    assert len(bench._baselines(str(tmp_path), "s", 100)) == 1
    with pytest.raises(SystemExit, match="depth 100"):
        bench._baselines(str(tmp_path), "s", 500)


@pytest.mark.parametrize("flag,value", [("--bf-depth", "0"), ("--bf-depth", "-3"), ("--bf-depth", "many"),
                                        ("--reservation-moves", "-1")])
def test_counts_below_their_least_are_refused(flag: str, value: str, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["scheduler.py", "--streams", "none", flag, value])
    with pytest.raises(SystemExit) as stop:
        bench.main()
    assert stop.value.code == 2
    assert flag in capsys.readouterr().err
