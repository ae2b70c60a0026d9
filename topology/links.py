"""Link health: a cable slower or narrower than its peers (a 4xNDR fabric with one 2xNDR or 4xHDR link).

One home for reading InfiniBand width and speed (`4xNDR`: 4 lanes of NDR) and for deciding that a link
is degraded: fewer lanes or a slower lane rate than the usual link of its class (adapter-to-leaf cables,
switch-to-switch cables), each class's usual being its most common link. Importers of fabric dumps find
the degraded links; the inventory keeps them (`degraded_links:`); the builder checks their ends and
reports each one; placement sees the nodes behind them (PlannerConfig.degraded_links).
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

import numpy as np

from .problems import Problem
from .spec import FabricSpec, LinkSpec

WIDTH_SPEED = re.compile(r"\b(\d{1,2})x(SDR|DDR|QDR|FDR10|FDR|EDR|HDR|NDR|XDR)\b")
LANE_GBPS = {"SDR": 2.5, "DDR": 5, "QDR": 10, "FDR10": 10, "FDR": 14, "EDR": 25, "HDR": 50, "NDR": 100, "XDR": 200}


def width_speed(text: str) -> tuple[int, float] | None:
    """(lanes, Gb/s per lane) of '4xNDR'; None when the text carries no width and speed."""
    m = WIDTH_SPEED.search(text or "")
    return (int(m.group(1)), LANE_GBPS[m.group(2)]) if m else None


def gbps(text: str) -> int | None:
    ws = width_speed(text)
    return int(ws[0] * ws[1]) if ws else None


def usual_link(links: Iterable[str]) -> str | None:
    """The most common readable link of a class (ties: the faster)."""
    seen = Counter(x for x in links if width_speed(x))
    if not seen:
        return None
    return max(seen, key=lambda x: (seen[x], gbps(x) or 0))


def degraded(link: str, usual: str | None) -> bool:
    """Fewer lanes or a slower lane than the usual link (an unreadable one is never called degraded)."""
    got, want = width_speed(link), width_speed(usual or "")
    return got is not None and want is not None and (got[0] < want[0] or got[1] < want[1])


def check_degraded_links(spec: FabricSpec, node_index: dict[str, int], switch_names: set[str],
                         problems: list[Problem]) -> np.ndarray:
    """A build pass: each degraded link's ends exist (a node or a switch), its texts read; each link is
    reported (grouped by kind when printed). Returns per node: behind a degraded link (its own cable)."""
    behind = np.zeros(len(node_index), dtype=bool)
    for k, ln in enumerate(spec.degraded_links):
        path = ln.path or f"degraded_links[{k}]"
        ends = []
        for end in (ln.a, ln.b):
            if end in node_index:
                ends.append("node")
            elif end in switch_names:
                ends.append("switch")
            else:
                problems.append(Problem(path, f"names {end!r}, which is neither a node nor a switch of the fabric"))
        for what in (ln.link, ln.usual):
            if width_speed(what) is None:
                problems.append(Problem(path, f"link {what!r} is not a width and speed such as 4xNDR"))
        if len(ends) < 2 or width_speed(ln.link) is None or width_speed(ln.usual) is None:
            continue
        for end, kind in zip((ln.a, ln.b), ends):
            if kind == "node":
                behind[node_index[end]] = True
        who = "node" if "node" in ends else "switch link"
        problems.append(Problem(path, f"{who} {ln.a!r} - {ln.b!r} runs {ln.link}, its peers {ln.usual}: slower or "
                                      f"narrower than its peers", "warning"))
    return behind


def degraded_summary(links: Iterable[LinkSpec], node_names: set[str]) -> dict[str, object]:
    """Per node and per switch: how many degraded links end there (for `topology show`)."""
    per_node: Counter = Counter()
    per_switch: Counter = Counter()
    total = 0
    for ln in links:
        total += 1
        for end in (ln.a, ln.b):
            (per_node if end in node_names else per_switch)[end] += 1
    return {"links": total, "nodes": dict(sorted(per_node.items())), "switches": dict(sorted(per_switch.items()))}
