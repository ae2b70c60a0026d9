"""Slurm hostlist expressions, through python-hostlist (never parsed by hand here)."""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import hostlist as _hl

from .problems import Problem


class HostlistError(ValueError):
    pass


def expand(expr: str) -> list[str]:
    """Expand `n[001-004],m7` to names, in order; raise HostlistError on malformed input."""
    if not isinstance(expr, str):
        raise HostlistError(f"expected a hostlist string, got {type(expr).__name__}")
    text = expr.strip()
    if not text:
        return []
    try:
        # sort=False keeps the order written (Slurm's node order); duplicates are kept so they can be reported
        return _hl.expand_hostlist(text, allow_duplicates=True, sort=False)
    except _hl.BadHostlist as exc:
        raise HostlistError(f"malformed hostlist {expr!r}: {exc}") from None


def expand_into(expr: object, path: str, problems: list[Problem], line: int | None = None) -> list[str]:
    """Expand a hostlist (or a YAML list of hostlists); malformed input becomes a Problem, not a raise."""
    parts: Sequence[object] = expr if isinstance(expr, list) else [expr]
    out: list[str] = []
    for i, part in enumerate(parts):
        sub = f"{path}[{i}]" if isinstance(expr, list) else path
        try:
            out.extend(expand(part if isinstance(part, str) else str(part)))
        except HostlistError as exc:
            problems.append(Problem(sub, str(exc), line=line))
    return out


_TRAILING_DIGITS = re.compile(r"^(.*?)(\d*)$")


def compress(names: Iterable[str]) -> str:
    """A Slurm-safe hostlist for these names: ranges only over trailing digits (`gpu[001-032]`).

    python-hostlist would also fold inner digits (`p[01-02]-su[01-02]`), which Slurm's own parser
    does not read as intended, so names are grouped by everything before their trailing digits and
    each group is compressed on its own. The result is sorted, as Slurm prints hostlists.
    """
    names = list(names)
    if not names:
        return ""
    groups: dict[str, list[str]] = {}
    for n in names:
        m = _TRAILING_DIGITS.match(n)
        groups.setdefault(m.group(1) if m and m.group(2) else n, []).append(n)
    return ",".join(_hl.collect_hostlist(g) for _, g in sorted(groups.items()))


def compress_ordered(names: Sequence[str]) -> str:
    """A hostlist that expands back to exactly these names *in this order* (Slurm's node order).

    Runs of one prefix with rising numbers of one width compress (`n[07-09],n[01-06]`); the
    result is checked by expanding it again, and falls back to plain names if that ever differs.
    """
    names = list(names)
    segments: list[list[str]] = []
    last: tuple[str, int, int] | None = None
    for n in names:
        m = _TRAILING_DIGITS.match(n)
        key = (m.group(1), len(m.group(2)), int(m.group(2))) if m and m.group(2) else None
        if (key is None or last is None or key[:2] != last[:2] or key[2] <= last[2]) or not segments:
            segments.append([n])
        else:
            segments[-1].append(n)
        last = key
    text = ",".join(compress(seg) for seg in segments)
    return text if expand(text) == names else ",".join(names)
