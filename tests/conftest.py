"""Shared test helpers: the ../shared data location, and a text-inventory loader."""
from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"


def shared_file(rel: str) -> Path:
    """A file of ../shared/data, or skip the test saying why."""
    path = SHARED / rel
    if not path.exists():
        pytest.skip(f"../shared/data/{rel} is absent: this test needs the project's shared real data")
    return path


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slurm", default=os.environ.get("PLACER_TEST_SLURM", "22.05"),
                     help="Slurm versions the lab tests run on, comma-separated: 22.05 (the host's), 24.11, 26.05 "
                     "(chroots made on first use); env PLACER_TEST_SLURM; default 22.05")
