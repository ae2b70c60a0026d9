"""Physical locations from a CSV (issue 20): `node,rack,u,serial` with optional `row` and `asset` columns,
by header name, one row per node or switch. Every problem names its line; a name listed twice is an error."""
from __future__ import annotations

import csv
import io

from .build import build_fabric
from .fabric import Fabric
from .inputs import clean_text
from .problems import InventoryError, Problem
from .spec import Location
from .subset import fabric_to_spec

COLUMNS = ("rack", "row", "u", "serial", "asset")


def parse_locations_csv(text: str, source: str = "locations.csv") -> dict[str, Location]:
    reader = csv.reader(io.StringIO(clean_text(text)))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise InventoryError([Problem("", "empty file: expected a header such as node,rack,u,serial", line=1)],
                             source) from None
    name_col = next((i for i, h in enumerate(header) if h in ("node", "name", "switch")), None)
    unknown = [h for h in header if h not in (*COLUMNS, "node", "name", "switch")]
    if name_col is None or unknown:
        why = f"unknown column(s) {', '.join(unknown)}" if unknown else "no node column"
        raise InventoryError([Problem("header", f"{why}: expected node,rack,u,serial (and optionally row, asset)",
                                      line=1)], source)
    cols = {h: i for i, h in enumerate(header) if h in COLUMNS}
    out: dict[str, Location] = {}
    seen: dict[str, int] = {}
    problems: list[Problem] = []
    for row in reader:
        no = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            problems.append(Problem("", f"expected {len(header)} columns ({','.join(header)}), got {len(row)}",
                                    line=no))
            continue
        name = row[name_col].strip()
        if not name or name in seen:
            problems.append(Problem(name, "a row needs a name" if not name else
                                    f"listed twice (first at line {seen[name]})", line=no))
            continue
        seen[name] = no
        val = {k: row[i].strip() or None for k, i in cols.items()}
        u = val.pop("u", None)
        if u is not None and not (u.isdigit() and len(u) <= 4):
            problems.append(Problem(name, f"rack unit {u!r} is not a whole number", line=no))
            continue
        out[name] = Location(val.get("rack"), val.get("row"), int(u) if u else None, val.get("serial"),
                             val.get("asset"))
    if problems:
        raise InventoryError(problems, source)
    if not out:
        raise InventoryError([Problem("", "no rows: nothing located")], source)
    return out


def with_locations(base: Fabric, locations: dict[str, Location], source: str) -> tuple[Fabric, list[Problem]]:
    """`base` with these locations added (a name located again takes the new one)."""
    spec = fabric_to_spec(base)
    spec.locations = {**spec.locations, **locations}
    return build_fabric(spec, source)
