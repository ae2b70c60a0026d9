"""How problems reach a terminal: grouped by kind (topology/problems.py), every one with `placer -v`.

The verbosity is the one given to this run of `placer` (set by the root command, read here), so a
command printing warnings and main() printing an InventoryError agree.
"""
from __future__ import annotations

import click

from topology import InventoryError, Problem
from topology.problems import render_grouped

_RUN = {"verbose": 0}


def set_verbose(level: int) -> None:
    _RUN["verbose"] = level


def verbose() -> bool:
    return _RUN["verbose"] > 0


def warn(problems: list[Problem], source: str | None = None, strict: bool = False) -> None:
    """Warnings to stderr, one line per kind (all with -v); with --strict they are errors and stop the command."""
    warnings = [p for p in problems if p.severity == "warning"]
    if strict and warnings:
        raise InventoryError([Problem(p.path, p.message, "error", p.line) for p in warnings], source)
    for line in render_grouped(warnings, source, verbose()):
        click.echo(line, err=True)
