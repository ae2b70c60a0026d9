"""`placer topology diff OLD NEW`: what changed in the fabric between two dumps or two inventories.

For the admin who runs ibnetdiscover every night. Both sides become one `Wiring`: every cable (its two
ends and what it runs at) and each host's leaf switches. Two dumps compare cable by cable (ends by GUID
and port, so a renamed switch is not a recabled one); two inventories (or a dump against an inventory)
compare at the inventory's level: each node's cable to its leaf per rail, each switch's to its parent,
and the degraded links the inventory keeps. Reported: cables lost and added, links degraded and restored
(fewer or more lanes, a slower or faster lane: topology/links.py), nodes moved to other leaves.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .fabric import Fabric
from .ibnetdiscover import Device, Dump, switch_name
from .links import width_speed

End = tuple[str, str]  # (identity, port); identity a GUID for dumps, a name for inventories
CableKey = frozenset[End]


@dataclass
class Wiring:
    cables: dict[CableKey, str] = field(default_factory=dict)  # -> width and speed ("" when unknown)
    label: dict[str, str] = field(default_factory=dict)  # identity -> readable name
    host_leaves: dict[str, frozenset[str]] = field(default_factory=dict)  # host -> its leaf switches' names


def looks_like_dump(text: str) -> bool:
    """An ibnetdiscover dump or ibdiagnet topology file (a device header), not a YAML inventory."""
    return _DEVICE_LINE.search(text[:1 << 20]) is not None


_DEVICE_LINE = re.compile(r'^\s*(Switch|Ca)\s+\d+\s+"[SH]-', re.MULTILINE)


def wiring_of_dump(dump: Dump) -> Wiring:
    w = Wiring()
    for guid, d in dump.devices.items():
        w.label[guid] = _device_name(d)
    leaves: dict[str, set[str]] = {}
    for guid, d in dump.devices.items():
        for port, (peer, pport, ws) in d.ports.items():
            key = frozenset({(guid, str(port)), (peer, str(pport))})
            w.cables[key] = ws or w.cables.get(key, "")  # both ends list the cable; one may omit its speed
            if d.kind == "Ca" and d.desc.split() and peer in dump.devices:
                leaves.setdefault(d.desc.split()[0], set()).add(_device_name(dump.devices[peer]))
    w.host_leaves = {h: frozenset(s) for h, s in leaves.items()}
    return w


def _device_name(d: Device) -> str:
    if d.kind == "Switch":
        name = switch_name(d)
        asic = d.desc.split(":", 1)[1].split("/")[1] if d.desc.count("/") >= 2 and ":" in d.desc else ""
        return f"{name}/{asic}" if asic and name != d.guid else name
    return d.desc or d.guid


def wiring_of_fabric(f: Fabric) -> Wiring:
    w = Wiring()
    slow = {frozenset({ln.a, ln.b}): ln.link for ln in f.degraded_links}
    for n, name in enumerate(f.node_names):
        leaves = [f.switches[s].name for s in f.node_switches[n]]
        for leaf in leaves:
            w.cables[frozenset({(name, ""), (leaf, "")})] = slow.get(frozenset({name, leaf}), "")
        w.host_leaves[name] = frozenset(leaves)
    for s in f.switches:
        if s.parent >= 0:
            parent = f.switches[s.parent].name
            w.cables[frozenset({(s.name, ""), (parent, "")})] = slow.get(frozenset({s.name, parent}), "")
    return w


@dataclass
class FabricDiff:
    lost: list[str]
    added: list[str]
    degraded: list[str]
    restored: list[str]
    moved: list[str]

    def empty(self) -> bool:
        return not (self.lost or self.added or self.degraded or self.restored or self.moved)

    def as_data(self) -> dict[str, Any]:
        return {"cables_lost": self.lost, "cables_added": self.added, "links_degraded": self.degraded,
                "links_restored": self.restored, "nodes_moved": self.moved}


def diff_wiring(old: Wiring, new: Wiring) -> FabricDiff:
    label = {**old.label, **new.label}

    def show(key: CableKey, ws: str) -> str:
        ends = sorted(f"{label.get(i, i)}[{p}]" if p else label.get(i, i) for i, p in key)
        return " - ".join(ends) + (f" ({ws})" if ws else "")

    lost = sorted(show(k, old.cables[k]) for k in old.cables.keys() - new.cables.keys())
    added = sorted(show(k, new.cables[k]) for k in new.cables.keys() - old.cables.keys())
    degraded: list[str] = []
    restored: list[str] = []
    for k in sorted(old.cables.keys() & new.cables.keys(), key=lambda k: show(k, "")):
        change = _compare(old.cables[k], new.cables[k])
        if change:
            (degraded if change < 0 else restored).append(f"{show(k, '')}: {old.cables[k] or 'as its peers'} -> "
                                                          f"{new.cables[k] or 'as its peers'}")
    moved = [f"{h}: {', '.join(sorted(old.host_leaves[h]))} -> {', '.join(sorted(new.host_leaves[h]))}"
             for h in sorted(old.host_leaves.keys() & new.host_leaves.keys())
             if old.host_leaves[h] != new.host_leaves[h]]
    return FabricDiff(lost, added, degraded, restored, moved)


def _compare(old: str, new: str) -> int:
    """-1 worse, 1 better, 0 the same; an inventory's '' means 'as its peers' (not degraded)."""
    if old == new:
        return 0
    a, b = width_speed(old), width_speed(new)
    if not old and b is not None:
        return -1
    if not new and a is not None:
        return 1
    if a is None or b is None:
        return 0
    if b[0] < a[0] or b[1] < a[1]:
        return -1
    return 1 if (b[0] > a[0] or b[1] > a[1]) else 0


def render_diff(d: FabricDiff, limit: int | None = 20) -> str:
    """Each section with its count; at most `limit` lines each (None: all)."""
    if d.empty():
        return "no change: the same cables, links and node positions"
    out = []
    for title, items in (("cables lost", d.lost), ("cables added", d.added), ("links degraded", d.degraded),
                         ("links restored", d.restored), ("nodes moved", d.moved)):
        if not items:
            continue
        out.append(f"{title}: {len(items)}")
        shown = items if limit is None else items[:limit]
        out.extend(f"  {x}" for x in shown)
        if len(items) > len(shown):
            out.append(f"  … and {len(items) - len(shown)} more (-v lists all)")
    return "\n".join(out)
