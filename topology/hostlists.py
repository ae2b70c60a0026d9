"""Slurm hostlist expressions, through python-hostlist (never parsed by hand here)."""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import hostlist as _hl

from .problems import Problem


class HostlistError(ValueError):
    pass


# the most names one expression may expand to: twice the 1,048,576-GPU fabric's 131,072 nodes (a 249-byte
# expression can otherwise name millions, and a hook request's 64 KiB hundreds of millions)
MAX_HOSTLIST_NAMES = 262_144
# python-hostlist refuses any range over its MAX_SIZE (100,000), so the 131,072-node fabric's own
# `gpu[000001-131072]` failed (issue 19). Raised knowingly: expand() counts names before the library
# sees them and stops at MAX_HOSTLIST_NAMES, so the library's own guard is never the one needed.
_hl.MAX_SIZE = max(int(getattr(_hl, "MAX_SIZE", 0)), MAX_HOSTLIST_NAMES)
_LONG_NUMBER = re.compile(r"\d{19}")
_DIGITS = re.compile(r"[0-9]{1,18}")


def _parts(text: str) -> list[str]:
    """Split at top-level commas (not those inside brackets), as Slurm and python-hostlist do."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(text):
        if c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in parts if p]


def _size(part: str) -> int:
    """How many names one part expands to, counted without expanding it (0 when malformed: the library says why)."""
    n = 1
    for body in re.findall(r"\[([^\[\]]*)\]", part):
        k = 0
        for rng in body.split(","):
            lo, _, hi = rng.partition("-")
            if not (_DIGITS.fullmatch(lo.strip()) and (not hi or _DIGITS.fullmatch(hi.strip()))):
                return 0  # malformed (or digits Python reads but Slurm does not, like '²'): the library says why
            k += int(hi) - int(lo) + 1 if hi else 1
        n *= max(k, 1)
    return n


def expand(expr: str, limit: int = MAX_HOSTLIST_NAMES) -> list[str]:
    """Expand `n[001-004],m7` to names, in order; raise HostlistError on malformed input or more than
    `limit` names (counted before expanding)."""
    if not isinstance(expr, str):
        raise HostlistError(f"expected a hostlist string, got {type(expr).__name__}")
    text = expr.strip()
    if not text:
        return []
    if any(c.isspace() or not c.isprintable() for c in text):
        raise HostlistError(f"hostlist {_short(expr)} has a space or control character in it")
    if _LONG_NUMBER.search(text):  # no node is numbered past 18 digits; the library would choke on it
        raise HostlistError(f"hostlist {_short(expr)} has a number of over 18 digits")
    total = 0
    for part in _parts(text):
        total += _size(part)
        if total > limit:
            raise HostlistError(f"hostlist {_short(expr)} names over {limit:,} nodes, more than placer expands")
    try:
        # sort=False keeps the order written (Slurm's node order); duplicates are kept so they can be reported
        return _hl.expand_hostlist(text, allow_duplicates=True, sort=False)
    except (_hl.BadHostlist, ValueError, IndexError, AttributeError) as exc:  # the library's own slips too
        raise HostlistError(f"malformed hostlist {_short(expr)}: {exc}") from None


def _short(expr: str) -> str:
    return repr(expr) if len(expr) <= 80 else repr(expr[:77] + "...")


_NAME_BAD = re.compile(r"[\s,\[\]#=\"'\\]")


def natural_key(name: str) -> list[tuple[int, str]]:
    """Sort key putting gpu2 before gpu10 (and mlx5_2 before mlx5_10) without int(): a name with 5,000
    digits, or digits Python reads but int() refuses, must not crash a sort."""
    return [(len(t.lstrip("0")), t) if i % 2 else (0, t) for i, t in enumerate(re.split(r"([0-9]+)", name))]


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a Slurm node or switch name (None when it can): what a hostlist could not
    write back, or Slurm's config parser would split (spaces, commas, brackets, `#`, `=`, quotes)."""
    if not name or len(name) > 255:
        return f"a name is 1 to 255 characters, got {len(name)}"
    if _NAME_BAD.search(name) or not name.isprintable():
        return f"{_short(name)} has a space, control character or one of , [ ] # = quotes"
    if _LONG_NUMBER.search(name):
        return f"{_short(name)} has a number of over 18 digits"
    return None


def expand_into(expr: object, path: str, problems: list[Problem], line: int | None = None) -> list[str]:
    """Expand a hostlist (or a YAML list of hostlists); malformed input becomes a Problem, not a raise."""
    parts: Sequence[object] = expr if isinstance(expr, list) else [expr]
    out: list[str] = []
    for i, part in enumerate(parts):
        sub = f"{path}[{i}]" if isinstance(expr, list) else path
        if not isinstance(part, str):  # YAML's 1.5, true, null, {a: 1}: never turned into a name by str()
            text = repr(part)
            problems.append(Problem(sub, f"expected a hostlist string, got {text[:60]} (quote it in YAML)", line=line))
            continue
        try:
            out.extend(expand(part, MAX_HOSTLIST_NAMES - len(out)))
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
