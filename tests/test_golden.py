"""Golden files: every exporter and `topology show` on each case folder under tests/golden/.

A case folder holds inventory.yaml (with its tree drawn on top), optional args.yaml (block_size),
and one expected file per output. Regenerate after an intended change with:

    PLACER_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from topology import RequestError, load_inventory
from topology.exporters import export
from topology.summary import render_summary, summarize

CASES = sorted(p for p in (Path(__file__).parent / "golden").iterdir() if (p / "inventory.yaml").exists())
OUTPUTS = {
    "slurm-tree": "slurm-tree.conf",
    "slurm-block": "slurm-block.conf",
    "slurm-yaml": "slurm-yaml.yaml",
    "slurm-nodes": "slurm-nodes.conf",
    "gres": "gres.conf",
    "dot": "fabric.dot",
    "json": "fabric.json",
    "show": "show.txt",
}
REGEN = os.environ.get("PLACER_REGEN_GOLDEN") == "1"


def produce(case: Path, fmt: str) -> tuple[str, str]:
    """(file name, text): the output, or for a refused export a `.error` file with the message."""
    fabric, _ = load_inventory(case / "inventory.yaml")
    args = yaml.safe_load((case / "args.yaml").read_text()) if (case / "args.yaml").exists() else {}
    if fmt == "show":
        return OUTPUTS[fmt], render_summary(summarize(fabric)) + "\n"
    block = args.get("block_size") if fmt in ("slurm-block", "slurm-yaml") else None
    try:
        return OUTPUTS[fmt], export(fabric, fmt, block)
    except RequestError as exc:
        return OUTPUTS[fmt].rsplit(".", 1)[0] + ".error", f"{exc}\n"


@pytest.mark.parametrize("fmt", list(OUTPUTS))
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden(case: Path, fmt: str) -> None:
    name, text = produce(case, fmt)
    path = case / name
    if REGEN:
        path.write_text(text)
    assert path.exists(), f"missing golden file {path}; create it with PLACER_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py"
    assert text == path.read_text(), (
        f"{path} differs from the output; if the change is intended, regenerate with "
        f"PLACER_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py and review the diff")


def test_every_case_has_every_output() -> None:
    assert len(CASES) >= 3
    for case in CASES:
        for fmt in OUTPUTS:
            name, _ = produce(case, fmt)
            assert (case / name).exists(), f"{case.name}: no golden {name}"
