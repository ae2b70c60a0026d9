"""Slurm's own files as input: topology.conf (tree) and the node lines of slurm.conf.

Pure functions over text. Real-world sloppiness is reported with file and line: errors stop the
import, warnings say what was repaired (redundant spines merged, a child listed as parent dropped).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from networkx.utils import UnionFind

from .build import build_fabric
from .fabric import Fabric
from .hostlists import HostlistError, compress, expand
from .inputs import clean_text
from .merge import merge_co_parents
from .problems import InventoryError, Problem, errors_in, shown
from .spec import FabricSpec, NodeSpec, NodeType, SwitchSpec

SLURM_STATES = {"down": "down", "drain": "drain", "fail": "drain", "failing": "drain", "future": "down",
                "draining": "drain", "drained": "drain"}


@dataclass
class ConfLine:
    line: int  # first physical line
    pairs: list[tuple[str, str]]  # (key lower-cased, value) in order


_WORD = re.compile(r"""(?:[^\s"'\\]|\\.|"(?:[^"\\]|\\.)*"|'[^']*')+""", re.S)
_PIECE = re.compile(r"""\\(.)|"((?:[^"\\]|\\.)*)"|'([^']*)'|([^"'\\]+)""", re.S)


def split_words(text: str) -> list[str]:
    """Shell-like words (quotes and backslash escapes), in linear time: shlex builds each token one
    character at a time, quadratic in the token's length (a 1 MB Nodes= line took 20 s, 2 MB never ended)."""
    words, pos = [], 0
    for m in _WORD.finditer(text):
        if text[pos:m.start()].strip():
            break
        words.append("".join(_unquote(p) for p in _PIECE.finditer(m.group(0))))
        pos = m.end()
    if text[pos:].strip():
        raise ValueError(f"no closing quotation or a dangling escape near {text[pos:pos + 20]!r}")
    return words


def _unquote(p: re.Match[str]) -> str:
    if p.group(1) is not None:
        return p.group(1)
    if p.group(2) is not None:
        return re.sub(r"\\(.)", r"\1", p.group(2))
    return p.group(3) if p.group(3) is not None else p.group(4)


def logical_lines(text: str, problems: list[Problem], source: str) -> list[ConfLine]:
    """Join `\\` continuations, drop comments, split key=value pairs (quotes allowed)."""
    out: list[ConfLine] = []
    buf, start = "", 0
    for no, raw in enumerate(text.splitlines(), start=1):
        # '#' starts a comment unless escaped as '\#'
        line = re.sub(r"(?<!\\)#.*", "", raw).replace("\\#", "#")
        if not buf:
            start = no
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        if buf.strip():
            try:
                tokens = split_words(buf)
            except ValueError as exc:
                problems.append(Problem("", f"cannot split line: {exc}", line=start))
                buf = ""
                continue
            pairs = []
            for tok in tokens:
                if "=" not in tok:
                    problems.append(Problem("", f"expected Key=Value, got {tok!r}", line=start))
                    continue
                k, v = tok.split("=", 1)
                pairs.append((k.strip().lower(), v.strip()))
            if pairs:
                out.append(ConfLine(start, pairs))
        buf = ""
    if buf.strip():
        problems.append(Problem("", "file ends inside a line continuation ('\\')", line=start))
    return out


# --- slurm.conf -----------------------------------------------------------------------------------
@dataclass
class SlurmNode:
    name: str
    line: int
    gpus: int
    gpu_model: str
    features: tuple[str, ...]
    state: str = "up"
    reason: str = ""


@dataclass
class SlurmConf:
    nodes: list[SlurmNode] = field(default_factory=list)


# a type names a model (h100, or a MIG profile such as 1g.10gb): letters, digits, `_.-`, never a leading
# `-`, at least one letter; a count is a whole number
_GPU_GRES = re.compile(r"^gpu(?::(?!-)([A-Za-z0-9_.\-]*[A-Za-z][A-Za-z0-9_.\-]*|\d+))?(?::(\d+))?(?:\(.*\))?$",
                       re.IGNORECASE)


def parse_gres_gpus(gres: str) -> tuple[int, str | None]:
    """`gpu:h100:8,nic:2` -> (8, 'h100'); `gpu:4` -> (4, None); no GPUs -> (0, None). A GPU entry that
    cannot be read (`gpu:-8`, `gpu:h100:x`) is a ValueError, never a model named "-8"."""
    total, model = 0, None
    for item in re.split(r",(?![^(]*\))", gres):
        item = item.strip()
        m = _GPU_GRES.match(item)
        if not m:
            if re.match(r"^gpu(?:[:(]|$)", item, re.IGNORECASE):
                raise ValueError(f"Gres entry {item!r}: expected gpu[:TYPE][:COUNT] with a whole count")
            continue
        typ, cnt = m.group(1), m.group(2)
        if cnt is None and typ is not None and typ.isdigit():  # gpu:8
            typ, cnt = None, typ
        total += int(cnt) if cnt is not None else 1
        model = model or (typ.lower() if typ else None)
    return total, model


def parse_slurm_conf(text: str, source: str, problems: list[Problem]) -> SlurmConf:
    conf = SlurmConf()
    defaults: dict[str, str] = {}
    index: dict[str, int] = {}
    for cl in logical_lines(clean_text(text), problems, source):
        key0, val0 = cl.pairs[0]
        attrs = {k: v for k, v in cl.pairs[1:]}
        if key0 == "nodename":
            if val0.upper() == "DEFAULT":
                defaults.update(attrs)
                continue
            merged = {**defaults, **attrs}
            try:
                names = expand(val0)
            except HostlistError as exc:
                problems.append(Problem("NodeName", str(exc), line=cl.line))
                continue
            try:
                gpus, model = parse_gres_gpus(merged.get("gres", ""))
            except ValueError as exc:
                problems.append(Problem(f"NodeName={val0}", str(exc), line=cl.line))
                continue
            feats = merged.get("features", merged.get("feature", ""))
            features = tuple(f for f in feats.split(",") if f)
            state = SLURM_STATES.get(merged.get("state", "").lower().split("+")[0], "up")
            reason = merged.get("reason", "") if state != "up" else ""
            for name in names:
                if name in index:
                    problems.append(Problem(f"NodeName={name}", f"node {name!r} defined again (first at line "
                                                                f"{conf.nodes[index[name]].line})", line=cl.line))
                    continue
                index[name] = len(conf.nodes)
                conf.nodes.append(SlurmNode(name, cl.line, gpus, model or "gpu", features, state, reason))
        elif key0 == "downnodes":
            try:
                names = expand(val0)
            except HostlistError as exc:
                problems.append(Problem("DownNodes", str(exc), line=cl.line))
                continue
            state = SLURM_STATES.get(attrs.get("state", "down").lower(), "down")
            for name in names:
                if name not in index:
                    problems.append(Problem("DownNodes", f"names unknown node {name!r}", line=cl.line))
                    continue
                n = conf.nodes[index[name]]
                n.state, n.reason = state, attrs.get("reason", "")
        # every other slurm.conf line (PartitionName, SlurmctldHost, ...) is not ours to read
    return conf


# --- topology.conf --------------------------------------------------------------------------------
@dataclass
class TopoSwitch:
    name: str
    line: int
    nodes: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    link_speed: int | None = None


def parse_topology_conf(text: str, source: str, problems: list[Problem]) -> list[TopoSwitch]:
    switches: list[TopoSwitch] = []
    seen: dict[str, int] = {}
    for cl in logical_lines(clean_text(text), problems, source):
        key0, val0 = cl.pairs[0]
        if key0 in ("blockname", "blocksizes"):
            problems.append(Problem("BlockName", "topology/block lines are not a tree; import a tree topology.conf",
                                    line=cl.line))
            continue
        if key0 != "switchname":
            problems.append(Problem(cl.pairs[0][0], f"unknown topology.conf line starting {key0}=", line=cl.line))
            continue
        if val0 in seen:
            problems.append(Problem(f"SwitchName={val0}", f"duplicate switch (first at line {seen[val0]})",
                                    line=cl.line))
            continue
        sw = TopoSwitch(val0, cl.line)
        for k, v in cl.pairs[1:]:
            try:
                if k == "nodes":
                    sw.nodes = expand(v)
                elif k == "switches":
                    sw.children = expand(v)
                elif k == "linkspeed":
                    sw.link_speed = int(v)
                else:
                    problems.append(Problem(f"SwitchName={val0}", f"unknown key {k!r} ignored", "warning", cl.line))
            except HostlistError as exc:
                problems.append(Problem(f"SwitchName={val0}", f"{k.capitalize()}: {exc}", line=cl.line))
            except ValueError:
                problems.append(Problem(f"SwitchName={val0}", f"LinkSpeed must be a whole number, got {v!r}",
                                        line=cl.line))
        seen[val0] = cl.line
        switches.append(sw)
    return switches


def _distance_from_leaves(topo: list[TopoSwitch]) -> dict[str, int]:
    """Hops up from the leaves (switches with nodes) for every switch that has nodes below it."""
    dist: dict[str, int] = {s.name: 0 for s in topo if s.nodes}
    frontier = list(dist)
    parents_of: dict[str, list[str]] = {}
    for s in topo:
        for c in s.children:
            parents_of.setdefault(c, []).append(s.name)
    while frontier:
        nxt = []
        for c in frontier:
            for p in parents_of.get(c, []):
                if p not in dist:
                    dist[p] = dist[c] + 1
                    nxt.append(p)
        frontier = nxt
    return dist


def _kept_edges(topo: list[TopoSwitch], by_name: dict[str, TopoSwitch], dist: dict[str, int],
                problems: list[Problem], label: str) -> dict[str, list[str]]:
    """child -> parents kept; a "child" that is higher than its parent closes a cycle and is dropped."""
    edges: dict[str, list[str]] = {}
    for s in topo:
        if s.name not in dist:
            problems.append(Problem(f"{label}={s.name}", "has no nodes below it; ignored", "warning", s.line))
            continue
        for c in s.children:
            if c not in by_name or c not in dist:
                continue
            if dist[c] >= dist[s.name]:
                problems.append(Problem(f"{label}={s.name}",
                                        f"lists {c!r} as a child, but {c!r} is above it (a cycle: {s.name} -> {c} -> "
                                        f"... -> {s.name}); taken as an uplink and dropped", "warning", s.line))
                continue
            edges.setdefault(c, []).append(s.name)
    return edges


def tree_to_switch_specs(topo: list[TopoSwitch], problems: list[Problem], add_root: str | None = None,
                         label: str = "SwitchName") -> list[SwitchSpec]:
    """Turn child lists (Slurm's, or an importer's) into single-parent logical switches, reporting every repair."""
    by_name = {s.name: s for s in topo}
    order = {s.name: i for i, s in enumerate(topo)}
    for s in topo:
        for c in s.children:
            if c not in by_name:
                problems.append(Problem(f"{label}={s.name}", f"names unknown switch {c!r}", line=s.line))
        if s.nodes and s.children:
            problems.append(Problem(f"{label}={s.name}", "has both Nodes= and Switches=; a leaf holds nodes only",
                                    line=s.line))
    dist = _distance_from_leaves(topo)
    edges = _kept_edges(topo, by_name, dist, problems, label)
    # co-parents of one child are one logical switch (a fat-tree's redundant spines)
    names = [s.name for s in topo if s.name in dist]
    uf = merge_co_parents(UnionFind(names), names, lambda m: edges.get(m, []))
    classes: dict[str, list[str]] = {}
    for n in names:
        classes.setdefault(uf[n], []).append(n)
    specs: list[SwitchSpec] = []
    class_name: dict[str, str] = {}
    for cls, members in sorted(classes.items(), key=lambda kv: order[kv[1][0]]):
        members.sort(key=lambda m: order[m])
        head = by_name[members[0]]
        class_name[cls] = head.name
        if len(members) > 1:
            problems.append(Problem(f"{label}={head.name}",
                                    f"{len(members)} switches {shown(members)} serve the same children (redundant "
                                    f"fat-tree switches); merged into one logical switch {head.name!r}", "warning",
                                    head.line))
        nodes = [n for m in members for n in by_name[m].nodes]
        speeds = {speed for m in members if (speed := by_name[m].link_speed) is not None}
        specs.append(SwitchSpec(name=head.name, path=f"{label}={head.name}", nodes=nodes,
                                members=members if len(members) > 1 else [],
                                link_speed=min(speeds) if speeds else None, line=head.line))
    for sp in specs:
        ps = {class_name[uf[p]] for m in (sp.members or [sp.name]) for p in edges.get(m, [])}
        sp.parent = next(iter(ps)) if ps else None
    roots = [sp for sp in specs if sp.parent is None]
    if len(roots) > 1 and add_root:
        problems.append(Problem("", f"{len(roots)} top switches joined under added root {add_root!r}", "warning"))
        for sp in roots:
            sp.parent = add_root
        specs.append(SwitchSpec(name=add_root, path=f"--add-root {add_root}"))
    return specs


def import_slurm(topology_text: str, slurm_text: str | None, *, topology_source: str = "topology.conf",
                 slurm_source: str = "slurm.conf", gpus_per_node: int | None = None, gpu_model: str = "gpu",
                 name: str = "slurm", add_root: str | None = None) -> tuple[Fabric, list[Problem]]:
    """Build a Fabric from topology.conf (+ slurm.conf node lines). Raises InventoryError on errors."""
    tproblems: list[Problem] = []
    sproblems: list[Problem] = []
    topo = parse_topology_conf(topology_text, topology_source, tproblems)
    conf = parse_slurm_conf(slurm_text, slurm_source, sproblems) if slurm_text is not None else None
    # a node under two leaves
    leaf_of: dict[str, TopoSwitch] = {}
    for s in topo:
        for n in s.nodes:
            if n in leaf_of and leaf_of[n] is not s:
                tproblems.append(Problem(f"SwitchName={s.name}", f"node {n!r} is also under {leaf_of[n].name!r} "
                                         f"(line {leaf_of[n].line}): Slurm's tree takes one leaf per node",
                                         line=s.line))
            else:
                leaf_of.setdefault(n, s)
    specs = tree_to_switch_specs(topo, tproblems, add_root)
    fspec = FabricSpec(name=name, switches=specs)
    type_key: dict[tuple, str] = {}

    def type_for(gpus: int, model: str, feats: tuple[str, ...]) -> str:
        key = (gpus, model, feats)
        if key not in type_key:
            base = f"{model}x{gpus}"
            nm = base if base not in type_key.values() else f"{base}-{len(type_key) + 1}"
            type_key[key] = nm
            fspec.node_types[nm] = NodeType(nm, gpus, model, feats)
        return type_key[key]

    topo_nodes = list(leaf_of)
    if conf is None:
        if gpus_per_node is None:
            tproblems.append(Problem("", "no slurm.conf given: GPU counts are unknown; give slurm.conf or "
                                         "--gpus-per-node"))
        else:
            tproblems.append(Problem("", f"no slurm.conf given: every node assumed to have {gpus_per_node} "
                                         f"{gpu_model} GPUs", "warning"))
            t = type_for(gpus_per_node, gpu_model, ())
            fspec.nodes = [NodeSpec(n, f"SwitchName={leaf_of[n].name}", t, line=leaf_of[n].line) for n in topo_nodes]
    else:
        in_conf = {n.name for n in conf.nodes}
        gpuless = [n.name for n in conf.nodes if n.gpus < 1]
        if gpuless:
            sproblems.append(Problem("NodeName", f"{len(gpuless)} node(s) without GPUs (no Gres=gpu) left out of "
                                                 f"the fabric: {compress(gpuless)}", "warning"))
        missing = [n for n in topo_nodes if n not in in_conf]
        by_switch: dict[str, list[str]] = {}
        for n in missing:
            by_switch.setdefault(leaf_of[n].name, []).append(n)
        for sw, ns in by_switch.items():
            first = next(s.line for s in topo if s.name == sw)
            tproblems.append(Problem(f"SwitchName={sw}", f"nodes {compress(ns)} are in topology.conf but not in "
                                                         f"slurm.conf", line=first))
        unplaced = [cn for cn in conf.nodes if cn.gpus >= 1 and cn.name not in leaf_of]
        for cn in unplaced:
            sproblems.append(Problem(f"NodeName={cn.name}", "GPU node is in slurm.conf but under no switch in "
                                                            "topology.conf", line=cn.line))
        keep = set(gpuless)
        for sp in specs:
            sp.nodes = [n for n in sp.nodes if n not in keep]
        fspec.nodes = [NodeSpec(n.name, f"NodeName={n.name}", type_for(n.gpus, n.gpu_model, n.features), n.state,
                                n.reason, n.line) for n in conf.nodes if n.gpus >= 1]
    # report both files' problems at once, each under its own file name
    all_problems = [_tag(p, topology_source) for p in tproblems] + [_tag(p, slurm_source) for p in sproblems]
    if errors_in(all_problems):
        raise InventoryError(all_problems)
    try:
        fabric, warnings = build_fabric(fspec, topology_source)
    except InventoryError as exc:
        raise InventoryError(all_problems + [_tag(p, topology_source) for p in exc.problems]) from None
    return fabric, all_problems + [_tag(p, topology_source) for p in warnings]


def _tag(p: Problem, source: str) -> Problem:
    """Prefix the file name so one list can mix problems of both files."""
    return Problem(f"{source}{':' + str(p.line) if p.line else ''}" + (f" {p.path}" if p.path else ""),
                   p.message, p.severity, None)
