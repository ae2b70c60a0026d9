"""Import real fabrics from `ibnetdiscover` dumps: switches, adapters, every port line.

Pure functions over text. Steps: parse every block and port line (line numbers kept for messages);
collapse director chassis (switch ASICs sharing one system image GUID) into one switch; drop SHARP
aggregation nodes; name hosts from adapter descriptions (`host mlx5_0`) or a GUID map; keep compute
adapters by a host filter; leaves are the switches holding compute adapters, tiers go up from them by
hop distance; each leaf's rail is its adapters' name (mlx5_3, HCA-4); co-parents merge into logical
switches (a fat-tree's spine layer), and nodes whose leaves coincide form one scalable unit (done by
the fabric builder). Every repair or omission is reported; nothing is dropped silently.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from .build import build_fabric
from .fabric import Fabric
from .hostlists import natural_key
from .inputs import clean_text
from .problems import InventoryError, Problem, errors_in
from .slurm_conf import TopoSwitch, tree_to_switch_specs
from .spec import FabricSpec, NodeSpec, NodeType, SwitchSpec

_HEADER = re.compile(r'^(Switch|Ca|Rt)\s+(\d+)\s+"([^"]+)"\s*(?:#\s*"([^"]*)")?(.*)$')
# ibdiagnet's topology file repeats the port in parentheses and gives the peer's GUID after its port:
#   [1](1) "H-0002c903000a0b0c"[1](0002c903000a0b0c)      # "gpu0001 HCA-2" lid 791 4xHDR
_SWITCH_PORT = re.compile(r'^\[(\d{1,5})\](?:\((?:\d{1,5}|[0-9a-fA-F]+)\))?\s*"([^"]+)"\[(\d{1,5})\]'
                          r'(?:\(([0-9a-fA-F]+)\))?\s*(?:#\s*"([^"]*)")?(.*)$')
# a shell prompt and command saved with the dump: [root@host dir]# ibnetdiscover, user@host:~$ ..., $ ...
_PROMPT = re.compile(r'^(?:\[[^\]"]*@[^\]"]*\]\s*[#$%>]|[\w.-]+@[\w.-]+(?::\S*)?\s*[#$%>]|[$%>](?:\s|$))')
_CA_PORT = re.compile(r'^\[(\d{1,5})\](?:\(([0-9a-fA-F]+)\))?\s*"([^"]+)"\[(\d{1,5})\](?:\(([0-9a-fA-F]+)\))?'
                      r'\s*(?:#(.*))?$')
_WIDTH_SPEED = re.compile(r"\b(\d{1,2})x(SDR|DDR|QDR|FDR10|FDR|EDR|HDR|NDR|XDR)\b")
LANE_GBPS = {"SDR": 2.5, "DDR": 5, "QDR": 10, "FDR10": 10, "FDR": 14, "EDR": 25, "HDR": 50, "NDR": 100, "XDR": 200}
DEFAULT_DESC = re.compile(r"^(MT\d+\b|.*Mellanox Technologies$|.*ConnectX.*Mellanox)", re.IGNORECASE)


@dataclass
class Device:
    kind: str  # Switch | Ca | Rt
    guid: str  # the quoted id, e.g. S-2c5e... / H-e09d...
    desc: str
    sysimg: str
    line: int
    ports: dict[int, tuple[str, int, str]] = field(default_factory=dict)  # port -> (peer id, peer port, width/speed)


@dataclass
class Dump:
    devices: dict[str, Device]
    problems: list[Problem]


def parse_dump(text: str) -> Dump:
    """Every device block and port line; malformed lines are errors naming the line and what was expected."""
    devices: dict[str, Device] = {}
    problems: list[Problem] = []
    cur: Device | None = None
    sysimg = ""
    prompts: list[int] = []
    for no, raw in enumerate(clean_text(text).splitlines(), start=1):
        line = raw.strip()
        if _PROMPT.match(line):
            prompts.append(no)
            continue
        if not line or line.startswith("#"):
            if not line:
                cur = None
            continue
        if line.startswith("sysimgguid="):
            sysimg = line.split("=", 1)[1].strip()
            continue
        if re.match(r"^(vendid|devid|switchguid|caguid|rtguid)=", line):
            continue
        m = _HEADER.match(line)
        if m:
            kind, _, guid, desc, _ = m.groups()
            if guid in devices:
                problems.append(Problem("", f"device {guid} appears twice (first at line {devices[guid].line})",
                                        line=no))
                cur = None
                continue
            cur = devices[guid] = Device(kind, guid, desc or "", sysimg, no)
            sysimg = ""
            continue
        if line.startswith("["):
            if cur is None:
                problems.append(Problem("", "port line outside a Switch/Ca block (expected a 'Switch N \"S-…\"' or "
                                            "'Ca N \"H-…\"' header first)", line=no))
                continue
            if cur.kind == "Switch":
                pm = _SWITCH_PORT.match(line)
                if not pm:
                    problems.append(Problem(cur.guid, f"unreadable switch port line (expected '[port] \"peer\"[port] "
                                                      f"# \"description\" lid N 4xNDR'): {line[:60]!r}", line=no))
                    continue
                port, peer, pport = int(pm.group(1)), pm.group(2), int(pm.group(3))
                tail = (pm.group(6) or "")
            else:
                pm = _CA_PORT.match(line)
                if not pm:
                    problems.append(Problem(cur.guid, f"unreadable adapter port line (expected '[port](guid) "
                                                      f"\"S-…\"[port] # …'): {line[:60]!r}", line=no))
                    continue
                port, peer, pport = int(pm.group(1)), pm.group(3), int(pm.group(4))
                tail = pm.group(6) or ""
            ws = _WIDTH_SPEED.search(tail)
            cur.ports[port] = (peer, pport, ws.group(0) if ws else "")
            continue
        problems.append(Problem("", f"unexpected line (not a header, port or GUID line): {line[:60]!r}", line=no))
    if prompts:
        shown = ", ".join(str(n) for n in prompts[:5]) + (f" and {len(prompts) - 5} more" if len(prompts) > 5 else "")
        problems.append(Problem("", f"skipped {len(prompts)} line(s) that are a shell prompt or command, not dump "
                                    f"output: line {shown}", "warning"))
    return Dump(devices, problems)


def switch_name(dev: Device) -> str:
    """A readable name: 'MF0;A09-P1-IBLEAF-04-04:MQM9701/U1' -> A09-P1-IBLEAF-04-04; 'Voltaire 4036 # sw7' -> sw7."""
    d = dev.desc
    m = re.match(r"^MF0;([^:]+):", d)
    if m:
        return m.group(1)
    if "#" in d:
        tail = d.split("#", 1)[1].strip()
        if tail and " " not in tail:
            return tail
    return dev.guid


def chassis_name(devs: list[Device]) -> str:
    names = {switch_name(d) for d in devs}
    if len(names) == 1:
        return names.pop()
    return f"chassis-{devs[0].sysimg.removeprefix('0x')}"


def gbps(width_speed: str) -> int | None:
    m = _WIDTH_SPEED.search(width_speed or "")
    if not m:
        return None
    return int(int(m.group(1)) * LANE_GBPS[m.group(2)])


@dataclass
class ImportOptions:
    gpus_per_node: int = 8
    gpu_model: str = "gpu"
    host_regex: str | None = None
    hosts: set[str] | None = None
    node_map: dict[str, str] | None = None  # adapter GUID (with or without H-) -> host name
    keep_unnamed: bool = False
    name: str = "ibnetdiscover"


def _norm_guid(g: str) -> str:
    return g.lower().removeprefix("h-").removeprefix("0x").lstrip("0")


Attach = dict[str, list[tuple[str, str, int | None]]]  # host -> [(unit, adapter, Gb/s)]
Links = dict[str, dict[str, list[int | None]]]  # unit -> neighbour unit -> link speeds


def import_ibnetdiscover(text: str, opt: ImportOptions, source: str = "dump") -> tuple[Fabric, list[Problem]]:
    """A fabric from an ibnetdiscover dump, in passes: parse -> switch units (directors merged) -> hosts
    from adapters -> the switch graph and its levels -> rails -> link speeds -> the tree -> build."""
    dump = parse_dump(text)
    problems = list(dump.problems)
    if errors_in(problems):
        raise InventoryError(problems, source)
    switches = {g: d for g, d in dump.devices.items() if d.kind == "Switch"}
    cas = {g: d for g, d in dump.devices.items() if d.kind == "Ca"}
    if not switches:
        hosts = ", ".join(sorted(d.desc or g for g, d in cas.items())[:5])
        raise InventoryError([Problem("", f"the dump has no switch, so there is no fabric to build "
                                          f"({len(cas)} adapter(s): {hosts})")], source)
    unit_of, unit_members = _switch_units(switches, problems)
    attach = _attach_hosts(cas, unit_of, opt, problems)
    if not attach:
        raise InventoryError(problems + [Problem("", "no compute adapter left: nothing to place jobs on "
                                                     "(check the host filter and the node map)")], source)
    links: Links = defaultdict(lambda: defaultdict(list))
    for d in switches.values():  # links inside a chassis do not count
        for peer, _, ws in d.ports.values():
            if peer in unit_of and unit_of[peer] != unit_of[d.guid]:
                links[unit_of[d.guid]][unit_of[peer]].append(gbps(ws))
    level = _levels(attach, links, unit_members, problems)
    rail_of = _rails(attach)
    usual = _usual_speed(attach, links, problems)
    specs = _tree(attach, links, level, unit_members, usual, rail_of, problems)
    fspec = FabricSpec(name=opt.name)
    tname = f"{opt.gpu_model}x{opt.gpus_per_node}"
    fspec.node_types[tname] = NodeType(tname, opt.gpus_per_node, opt.gpu_model, ())
    for host in attach:
        fspec.nodes.append(NodeSpec(host, f"host {host}", tname))
    fspec.switches = specs
    if errors_in(problems):
        raise InventoryError(problems, source)
    fabric, warnings = build_fabric(fspec, source)
    return fabric, problems + warnings


def _switch_units(switches: dict[str, Device], problems: list[Problem]
                  ) -> tuple[dict[str, str], dict[str, list[Device]]]:
    """Directors: switch ASICs sharing a system image GUID are one chassis (one unit)."""
    by_img: dict[str, list[Device]] = defaultdict(list)
    for d in switches.values():
        by_img[d.sysimg or d.guid].append(d)
    unit_of: dict[str, str] = {}
    unit_members: dict[str, list[Device]] = {}
    for img, devs in by_img.items():
        uid = chassis_name(devs) if len(devs) > 1 else switch_name(devs[0])
        if uid in unit_members:  # names must be unique: fall back to the GUID
            uid = devs[0].guid if len(devs) == 1 else f"chassis-{img.removeprefix('0x')}"
        unit_members[uid] = devs
        for d in devs:
            unit_of[d.guid] = uid
        if len(devs) > 1:
            problems.append(Problem(uid, f"director chassis: {len(devs)} switch ASICs with system image GUID {img} "
                                         f"taken as one switch", "warning"))
    return unit_of, unit_members


def _host_of(g: str, d: Device, nmap: dict[str, str]) -> tuple[str | None, str]:
    """(host, adapter) from the node map, else from the adapter's description (None: a default one)."""
    if _norm_guid(g) in nmap:
        return nmap[_norm_guid(g)], "port1"
    parts = d.desc.split()  # a blank description names nothing, like a default one
    if parts and not DEFAULT_DESC.match(d.desc.strip()):
        return parts[0], parts[1] if len(parts) > 1 else "port1"
    return None, "port1"


def _attach_hosts(cas: dict[str, Device], unit_of: dict[str, str], opt: ImportOptions,
                  problems: list[Problem]) -> Attach:
    """Adapters: SHARP aggregation nodes out; hosts named from descriptions or the map; the host filter."""
    nmap = {_norm_guid(k): v for k, v in (opt.node_map or {}).items()}
    sharp = filtered = 0
    unnamed: list[str] = []
    host_rx = re.compile(opt.host_regex) if opt.host_regex else None
    attach: Attach = defaultdict(list)
    for g, d in sorted(cas.items(), key=lambda kv: kv[1].line):
        if "aggregation node" in d.desc.lower():
            sharp += 1
            continue
        host, adapter = _host_of(g, d, nmap)
        if host is None:
            unnamed.append(g)
            if not opt.keep_unnamed:
                continue
            host = g
        if (host_rx and not host_rx.search(host)) or (opt.hosts is not None and host not in opt.hosts):
            filtered += 1
            continue
        for port, (peer, _, ws) in sorted(d.ports.items()):
            if peer not in unit_of:
                problems.append(Problem(g, f"adapter of {host} links to {peer}, which is not a switch in the dump",
                                        "warning", d.line))
                continue
            attach[host].append((unit_of[peer], adapter if len(d.ports) == 1 else f"{adapter}/{port}", gbps(ws)))
    if sharp:
        problems.append(Problem("", f"{sharp} SHARP aggregation node(s) ignored (not compute nodes)", "warning"))
    if unnamed:
        shown = ", ".join(unnamed[:6]) + (" …" if len(unnamed) > 6 else "")
        what = "kept as nodes named by GUID" if opt.keep_unnamed else \
            "left out (give --node-map GUID NAME, or --keep-unnamed)"
        problems.append(Problem("", f"{len(unnamed)} adapter(s) still carry a default description, so their host is "
                                    f"unknown: {shown}; {what}", "warning"))
    if filtered:
        problems.append(Problem("", f"{filtered} adapter(s) left out by the host filter", "warning"))
    return attach


def _levels(attach: Attach, links: Links, unit_members: dict[str, list[Device]],
            problems: list[Problem]) -> dict[str, int]:
    """Each unit's distance from the leaves (units holding hosts); units out of reach are reported."""
    leaves = {u for host in attach for u, _, _ in attach[host]}
    level = {u: 0 for u in leaves}
    frontier = sorted(leaves)
    while frontier:
        nxt = []
        for u in frontier:
            for v in links[u]:
                if v not in level:
                    level[v] = level[u] + 1
                    nxt.append(v)
        frontier = sorted(nxt)
    orphans = sorted(set(unit_members) - set(level))
    if orphans:
        problems.append(Problem("", f"{len(orphans)} switch(es) with no path to any compute adapter ignored: "
                                    f"{', '.join(orphans[:6])}", "warning"))
    return level


def _rails(attach: Attach) -> dict[str, int]:
    """Rails (when hosts hang from several leaves): a leaf's rail is its adapters' most common name."""
    leaf_adapter: dict[str, Counter] = defaultdict(Counter)
    for att in attach.values():
        for u, adapter, _ in att:
            leaf_adapter[u][adapter] += 1
    names = sorted({c.most_common(1)[0][0] for c in leaf_adapter.values()}, key=natural_key)
    multi_rail = any(len({u for u, _, _ in att}) > 1 for att in attach.values())
    return {u: names.index(c.most_common(1)[0][0]) for u, c in leaf_adapter.items()} if multi_rail else {}


def _usual_speed(attach: Attach, links: Links, problems: list[Problem]) -> int | None:
    """The most common link speed; slower links are reported."""
    speeds: Counter = Counter()
    for att in attach.values():
        for _, _, s in att:
            if s:
                speeds[s] += 1
    for peers in links.values():
        for ss in peers.values():
            speeds.update(s for s in ss if s)
    usual = speeds.most_common(1)[0][0] if speeds else None
    slow = [(u, v, s) for u, peers in links.items() for v, ss in peers.items() for s in ss
            if usual and s and s < usual and u < v]
    slow += [(host, u, s) for host, att in attach.items() for u, _, s in att if usual and s and s < usual]
    if slow:
        shown = ", ".join(f"{a}-{b} {s} Gb/s" for a, b, s in slow[:6])
        problems.append(Problem("", f"{len(slow)} link(s) slower than the usual {usual} Gb/s: {shown}", "warning"))
    return usual


def _tree(attach: Attach, links: Links, level: dict[str, int], unit_members: dict[str, list[Device]],
          usual: int | None, rail_of: dict[str, int], problems: list[Problem]) -> list[SwitchSpec]:
    """Leaves hold hosts, upper units list their children (neighbours one level down); then the one
    co-parent merge of topology.conf's importer, and each leaf's rail."""
    topo: list[TopoSwitch] = []
    hosts_of_leaf: dict[str, list[str]] = defaultdict(list)
    for host in attach:
        for u, _, _ in attach[host]:
            if host not in hosts_of_leaf[u]:
                hosts_of_leaf[u].append(host)
    for u in sorted(level, key=lambda x: (level[x], x)):
        kids = sorted(v for v in links[u] if level.get(v) == level[u] - 1)
        down = [s for v in kids for s in links[u][v] if s]
        sp = Counter(down).most_common(1)[0][0] if down else usual
        topo.append(TopoSwitch(u, unit_members[u][0].line, nodes=hosts_of_leaf.get(u, []) if level[u] == 0 else [],
                               children=kids, link_speed=sp))
    tree_problems: list[Problem] = []
    specs = tree_to_switch_specs(topo, tree_problems, label="switch")
    problems += tree_problems
    for spec in specs:
        if spec.nodes and rail_of:
            spec.rail = rail_of.get(spec.name)
            if spec.members:  # co-parent merging only happens above the leaves; a leaf keeps its own rail
                spec.rail = None
    return specs


def parse_node_map(text: str, source: str) -> dict[str, str]:
    """`GUID NAME` per line (as the PSMN X5.map), '#' comments."""
    out: dict[str, str] = {}
    problems = []
    for no, raw in enumerate(clean_text(text).splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            problems.append(Problem("", f"expected 'GUID NAME', got {line!r}", line=no))
            continue
        out[parts[0]] = parts[1]
    if problems:
        raise InventoryError(problems, source)
    return out
