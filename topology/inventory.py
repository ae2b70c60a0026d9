"""The inventory file (YAML): load with every problem collected, and dump a Fabric back to it.

The format is documented, with a commented example, in examples/inventory-example.yaml.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .build import build_fabric
from .fabric import Fabric, NodeState, Switch
from .hostlists import compress_ordered, expand_into
from .inputs import parse_yaml, read_input
from .problems import InventoryError, Problem
from .spec import NODE_STATES, DomainSpec, FabricSpec, LinkSpec, Location, NodeSpec, NodeType, SwitchSpec

FORMAT_VERSION = 1
_TOP_KEYS = {"version", "name", "node_types", "defaults", "nodes", "switches", "nvlink_domains", "degraded_links",
             "locations"}
_LOCATION_KEYS = {"rack", "row", "u", "serial", "asset"}
_LINK_KEYS = {"a", "b", "link", "usual"}
_TYPE_KEYS = {"gpus", "gpu_model", "features", "nvlink_islands", "nvlinks"}
_NODE_KEYS = {"names", "type", "state", "reason"}
_SWITCH_KEYS = {"name", "parent", "rail", "su", "nodes", "members", "link_speed"}
_DOMAIN_KEYS = {"name", "nodes"}

try:  # libyaml's C dumper: 10x faster on the 27,648-node fabrics
    _Dumper: Any = yaml.CSafeDumper
except AttributeError:  # pragma: no cover
    _Dumper = yaml.SafeDumper


def _unknown_keys(obj: dict, allowed: set[str], path: str, problems: list[Problem]) -> None:
    for k in obj:
        if k not in allowed:
            problems.append(Problem(f"{path}.{k}", f"unknown key {k!r} (allowed: {', '.join(sorted(allowed))})"))


def _int(obj: dict, key: str, path: str, problems: list[Problem], default: int | None = None) -> int | None:
    v = obj.get(key, default)
    if v is None or (isinstance(v, int) and not isinstance(v, bool)):
        return v
    problems.append(Problem(f"{path}.{key}", f"expected a whole number, got {v!r}"))
    return default


def _str(obj: dict, key: str, path: str, problems: list[Problem], default: str | None = None) -> str | None:
    v = obj.get(key, default)
    if v is None or isinstance(v, str):
        return v
    # YAML reads `01`, `1.5`, `true`, `null` as numbers and constants: taking str() of them would invent names
    problems.append(Problem(f"{path}.{key}", f"expected a string, got {_shown(v)} (quote it in YAML)"))
    return default


def _shown(v: object) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _list_of_maps(doc: dict, key: str, problems: list[Problem]) -> list[dict]:
    v = doc.get(key) or []
    if not isinstance(v, list):
        problems.append(Problem(key, f"expected a list, got {type(v).__name__}"))
        return []
    out = []
    for i, item in enumerate(v):
        if isinstance(item, dict):
            out.append(item)
        else:
            problems.append(Problem(f"{key}[{i}]", f"expected a mapping, got {item!r}"))
            out.append({})
    return out


def spec_from_document(doc: Any, problems: list[Problem]) -> FabricSpec:
    """Turn a parsed YAML/JSON document into a FabricSpec, appending every schema problem."""
    if not isinstance(doc, dict):
        problems.append(Problem("", f"an inventory is a mapping at top level, got {type(doc).__name__}"))
        return FabricSpec(name="")
    _unknown_keys(doc, _TOP_KEYS, "", problems)
    version = doc.get("version")
    if version != FORMAT_VERSION:
        problems.append(Problem("version", f"unsupported inventory version {version!r} (this placer reads "
                                           f"version {FORMAT_VERSION})"))
    spec = FabricSpec(name=str(doc.get("name") or "fabric"))
    types = doc.get("node_types") or {}
    if not isinstance(types, dict):
        problems.append(Problem("node_types", "expected a mapping of type name to attributes"))
        types = {}
    for tname, t in types.items():
        nt = _node_type(str(tname), t, problems)
        if nt is not None:
            spec.node_types[str(tname)] = nt
    default_type = _default_type(doc, spec, problems)
    declared: set[str] = set()
    _nodes(doc, spec, default_type, declared, problems)
    _switches(doc, spec, default_type, declared, problems)
    for i, d in enumerate(_list_of_maps(doc, "nvlink_domains", problems)):
        path = f"nvlink_domains[{i}]"
        _unknown_keys(d, _DOMAIN_KEYS, path, problems)
        name = _str(d, "name", path, problems) or f"domain{i}"
        spec.domains.append(DomainSpec(name=name, path=path, nodes=expand_into(d.get("nodes") or "",
                                                                                f"{path}.nodes", problems)))
    for i, d in enumerate(_list_of_maps(doc, "degraded_links", problems)):
        path = f"degraded_links[{i}]"
        _unknown_keys(d, _LINK_KEYS, path, problems)
        ends = [_str(d, k, path, problems) for k in ("a", "b", "link", "usual")]
        missing = [k for k, v in zip(("a", "b", "link", "usual"), ends) if not v]
        if missing:
            problems.append(Problem(path, f"a degraded link needs a, b, link and usual; missing {', '.join(missing)}"))
            continue
        a, b, link, usual = (str(v) for v in ends)
        spec.degraded_links.append(LinkSpec(a, b, link, usual, path=path))
    spec.locations = _locations(doc, problems)
    return spec


def _label(obj: dict, key: str, path: str, problems: list[Problem]) -> str | None:
    """A rack, row, serial or asset tag: text, or a whole number written bare (`rack: 12`)."""
    v = obj.get(key)
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return _str(obj, key, path, problems)


def _locations(doc: dict, problems: list[Problem]) -> dict[str, Location]:
    """`locations: {NAME: {rack, row, u, serial, asset}}`: where each node or switch is."""
    v = doc.get("locations") or {}
    if not isinstance(v, dict):
        problems.append(Problem("locations", f"expected a mapping of node or switch name to rack/row/u/serial/asset, "
                                             f"got {type(v).__name__}"))
        return {}
    out: dict[str, Location] = {}
    for name, loc in v.items():
        path = f"locations.{name}"
        if not isinstance(name, str) or not isinstance(loc, dict):
            problems.append(Problem(path, "expected NAME: {rack: ..., u: ..., serial: ...}"))
            continue
        _unknown_keys(loc, _LOCATION_KEYS, path, problems)
        u = _int(loc, "u", path, problems)
        if u is not None and not 0 <= u <= 1000:
            problems.append(Problem(f"{path}.u", f"rack unit {u} is not between 0 and 1,000"))
        text = {k: _label(loc, k, path, problems) for k in ("rack", "row", "serial", "asset")}
        out[name] = Location(text["rack"], text["row"], u, text["serial"], text["asset"])
    return out


def _node_type(tname: str, t: Any, problems: list[Problem]) -> NodeType | None:
    tpath = f"node_types.{tname}"
    if not isinstance(t, dict):
        problems.append(Problem(tpath, f"expected a mapping, got {t!r}"))
        return None
    _unknown_keys(t, _TYPE_KEYS, tpath, problems)
    gpus = _int(t, "gpus", tpath, problems)
    if gpus is None:
        problems.append(Problem(f"{tpath}.gpus", f"node type {tname!r} needs a GPU count"))
        gpus = 0
    feats = t.get("features") or []
    if isinstance(feats, str):
        feats = [f for f in feats.split(",") if f]
    if not isinstance(feats, list) or not all(isinstance(f, str) for f in feats):
        problems.append(Problem(f"{tpath}.features", f"expected a list of feature names, got {feats!r}"))
        feats = []
    islands = t.get("nvlink_islands") or []
    ok = isinstance(islands, list) and all(
        isinstance(i, list) and all(isinstance(g, int) and not isinstance(g, bool) for g in i) for i in islands)
    if not ok:
        problems.append(Problem(f"{tpath}.nvlink_islands", f"expected a list of GPU index lists, got {islands!r}"))
        islands = []
    links = t.get("nvlinks") or []
    ok = isinstance(links, list) and all(isinstance(r, list) and len(r) == gpus and all(
        isinstance(x, int) and not isinstance(x, bool) and x >= -1 for x in r) for r in links) and \
        (not links or len(links) == gpus)
    if not ok:
        problems.append(Problem(f"{tpath}.nvlinks", f"expected a {gpus}x{gpus} matrix of NVLink counts, got "
                                                    f"{str(links)[:60]}"))
        links = []
    return NodeType(name=tname, gpus=gpus, gpu_model=_str(t, "gpu_model", tpath, problems, "gpu") or "gpu",
                    features=tuple(feats), nvlink_islands=tuple(tuple(i) for i in islands),
                    nvlinks=tuple(tuple(r) for r in links))


def _default_type(doc: dict[str, Any], spec: FabricSpec, problems: list[Problem]) -> str | None:
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        problems.append(Problem("defaults", "expected a mapping"))
        defaults = {}
    _unknown_keys(defaults, {"type"}, "defaults", problems)
    default_type = _str(defaults, "type", "defaults", problems)
    if default_type is not None and default_type not in spec.node_types:
        problems.append(Problem("defaults.type", f"unknown node type {default_type!r}"))
    return default_type


def _nodes(doc: dict[str, Any], spec: FabricSpec, default_type: str | None, declared: set[str],
           problems: list[Problem]) -> None:
    for i, n in enumerate(_list_of_maps(doc, "nodes", problems)):
        path = f"nodes[{i}]"
        _unknown_keys(n, _NODE_KEYS, path, problems)
        if "names" not in n:
            problems.append(Problem(path, "a node entry needs `names` (a hostlist)"))
            continue
        names = expand_into(n["names"], f"{path}.names", problems)
        tname = _str(n, "type", path, problems, default_type)
        if tname is None:
            problems.append(Problem(f"{path}.type", "no node type given and no defaults.type"))
            continue
        state = (_str(n, "state", path, problems, "up") or "up").lower()
        if state not in NODE_STATES:
            problems.append(Problem(f"{path}.state", f"unknown state {state!r} (one of {', '.join(NODE_STATES)})"))
            state = "up"
        reason = _str(n, "reason", path, problems, "") or ""
        for k, name in enumerate(names):
            spec.nodes.append(NodeSpec(name=name, path=f"{path}.names[{k}]", type=tname, state=state, reason=reason))
            declared.add(name)


def _switches(doc: dict[str, Any], spec: FabricSpec, default_type: str | None, declared: set[str],
              problems: list[Problem]) -> None:
    """Switches; with a default node type, nodes first named under a switch are declared there."""
    for i, s in enumerate(_list_of_maps(doc, "switches", problems)):
        path = f"switches[{i}]"
        name = _str(s, "name", path, problems)
        if not name:
            _unknown_keys(s, _SWITCH_KEYS, path, problems)
            problems.append(Problem(f"{path}.name", "a switch needs a name"))
            continue
        path = f"switches[{i}]({name})"
        _unknown_keys(s, _SWITCH_KEYS, path, problems)
        nodes = expand_into(s.get("nodes") or "", f"{path}.nodes", problems)
        members = expand_into(s.get("members") or "", f"{path}.members", problems)
        spec.switches.append(SwitchSpec(
            name=name, path=path, parent=_str(s, "parent", path, problems), rail=_int(s, "rail", path, problems),
            nodes=nodes, members=members, link_speed=_int(s, "link_speed", path, problems),
            su=_str(s, "su", path, problems)))
        if default_type is not None:
            for k, nname in enumerate(nodes):
                if nname not in declared:
                    declared.add(nname)
                    spec.nodes.append(NodeSpec(name=nname, path=f"{path}.nodes[{k}]", type=default_type))


def load_inventory_text(text: str, source: str = "<inventory>") -> tuple[Fabric, list[Problem]]:
    """Parse and validate an inventory; raises InventoryError listing every problem."""
    problems: list[Problem] = []
    doc = parse_yaml(text, problems)
    if problems:
        raise InventoryError(problems, source)
    spec = spec_from_document(doc, problems)
    try:
        fabric, warnings = build_fabric(spec, source)
    except InventoryError as exc:
        raise InventoryError(problems + exc.problems, source) from None
    if [p for p in problems if p.severity == "error"]:
        raise InventoryError(problems + warnings, source)
    return fabric, problems + warnings


def load_inventory(path: str | Path) -> tuple[Fabric, list[Problem]]:
    text, problem = read_input(path)
    if problem is not None or text is None:
        raise InventoryError([problem or Problem("", "unreadable")], str(path))
    return load_inventory_text(text, str(path))


# ------------------------------------------------------------------------------------------------
def _hostlist_or_list(names: list[str]) -> str:
    """A compact hostlist that expands back to exactly these names in this order."""
    return compress_ordered(names) if names else ""


def fabric_to_document(fabric: Fabric) -> dict[str, Any]:
    """The canonical inventory document for a fabric; load(dump(f)) rebuilds the same fabric."""
    doc: dict[str, Any] = {"version": FORMAT_VERSION, "name": fabric.name,
                           "node_types": {t.name: _type_document(t) for t in fabric.node_types},
                           "nodes": _node_runs(fabric),
                           "switches": [_switch_document(fabric, s) for s in fabric.switches]}
    if fabric.domain_names:
        doc["nvlink_domains"] = [
            {"name": d, "nodes": _hostlist_or_list([fabric.node_names[n] for n in range(fabric.n_nodes)
                                                    if fabric.node_domain[n] == i])}
            for i, d in enumerate(fabric.domain_names)]
    if fabric.degraded_links:
        doc["degraded_links"] = [{"a": ln.a, "b": ln.b, "link": ln.link, "usual": ln.usual}
                                 for ln in fabric.degraded_links]
    if fabric.locations:
        doc["locations"] = {n: loc.as_data() for n, loc in fabric.locations.items()}
    return doc


def _type_document(t: NodeType) -> dict[str, Any]:
    td: dict[str, Any] = {"gpus": t.gpus, "gpu_model": t.gpu_model}
    if t.features:
        td["features"] = list(t.features)
    if t.nvlink_islands:
        td["nvlink_islands"] = [list(i) for i in t.nvlink_islands]
    if t.nvlinks:
        td["nvlinks"] = [list(r) for r in t.nvlinks]
    return td


def _node_runs(fabric: Fabric) -> list[dict[str, Any]]:
    """Nodes as runs of equal attributes in node-index order, each run one hostlist."""
    runs: list[dict[str, Any]] = []
    cur_key: tuple | None = None
    cur: list[str] = []
    states = [s.name.lower() for s in NodeState]

    def flush() -> None:
        if cur and cur_key is not None:
            entry: dict[str, Any] = {"names": _hostlist_or_list(cur), "type": cur_key[0]}
            if cur_key[1] != "up":
                entry["state"] = cur_key[1]
            if cur_key[2]:
                entry["reason"] = cur_key[2]
            runs.append(entry)

    for i, name in enumerate(fabric.node_names):
        key = (fabric.node_types[int(fabric.node_type[i])].name, states[int(fabric.node_state[i])],
               fabric.node_reason.get(i, ""))
        if key != cur_key:
            flush()
            cur_key, cur = key, []
        cur.append(name)
    flush()
    return runs


def _switch_document(fabric: Fabric, s: Switch) -> dict[str, Any]:
    sd: dict[str, Any] = {"name": s.name}
    if s.parent >= 0:
        sd["parent"] = fabric.switches[s.parent].name
    if s.rail is not None:
        sd["rail"] = s.rail
    if s.su:
        sd["su"] = s.su
    if s.members != (s.name,):
        sd["members"] = _hostlist_or_list(list(s.members))
    if s.link_speed is not None:
        sd["link_speed"] = s.link_speed
    if s.nodes:
        sd["nodes"] = _hostlist_or_list([fabric.node_names[n] for n in s.nodes])
    return sd


def dump_inventory(fabric: Fabric, header: str | None = None) -> str:
    text = yaml.dump(fabric_to_document(fabric), Dumper=_Dumper, sort_keys=False, default_flow_style=None,
                     width=120)
    head = "# placer inventory (format version 1); see examples/inventory-example.yaml for every field\n"
    if header:
        head += "".join(f"# {line}\n" for line in header.splitlines())
    return head + text
