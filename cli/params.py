"""Option types shared by the commands."""
from __future__ import annotations

import math
from typing import Any

import click


class FiniteRange(click.FloatRange):
    """click.FloatRange that also refuses NaN and infinities (its range checks let NaN through: every
    comparison with NaN is false)."""

    name = "finite float range"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        out = super().convert(value, param, ctx)
        if out is not None and not math.isfinite(out):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return out
