"""Synthetic fabrics built like the published reference designs (DGX SuperPOD, Colossus).

8-GPU nodes, 32-node scalable units (SU) with one leaf per rail, 16 SUs per pod under a spine
layer, pods under a core. Logical spine/core switches list their physical members.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .build import build_fabric
from .fabric import Fabric
from .problems import RequestError
from .spec import DomainSpec, FabricSpec, NodeSpec, NodeType, SwitchSpec


@dataclass(frozen=True)
class Design:
    pods: int = 1
    sus_per_pod: int = 4
    nodes_per_su: int = 32
    gpus_per_node: int = 8
    rails: int = 8  # 0: one leaf per SU (no rail detail)
    gpu_model: str = "h100"
    node_prefix: str = "gpu"
    nvl_domain_nodes: int = 0  # >0: consecutive nodes form multi-node NVLink domains (GB200 NVL72: 18)
    switch_ports: int = 64
    link_speed: int | None = None
    name: str = "generated"

    @property
    def nodes(self) -> int:
        return self.pods * self.sus_per_pod * self.nodes_per_su

    @property
    def gpus(self) -> int:
        return self.nodes * self.gpus_per_node


PRESETS: dict[str, Design] = {
    "superpod": Design(pods=1, sus_per_pod=4, name="superpod-1k"),
    "campus-16k": Design(pods=4, sus_per_pod=16, name="campus-16k"),
    "colossus-100k": Design(pods=25, sus_per_pod=16, name="colossus-100k"),
    "colossus-200k": Design(pods=54, sus_per_pod=16, name="colossus-200k"),
    "colossus-1m": Design(pods=256, sus_per_pod=16, name="colossus-1m"),
    "gb200-nvl72": Design(pods=1, sus_per_pod=8, nodes_per_su=144, gpus_per_node=4, rails=4, gpu_model="gb200",
                          nvl_domain_nodes=18, name="gb200-nvl72"),
    "tiny": Design(pods=2, sus_per_pod=2, nodes_per_su=4, rails=2, name="tiny"),
}
PRESET_HELP = {
    "superpod": "one 4-SU DGX H100 SuperPOD: 128 nodes, 1,024 GPUs, two tiers",
    "campus-16k": "4 pods x 16 SUs: 2,048 nodes, 16,384 GPUs, three tiers",
    "colossus-100k": "25 pods: 12,800 nodes, 102,400 GPUs",
    "colossus-200k": "54 pods: 27,648 nodes, 221,184 GPUs",
    "colossus-1m": "256 pods: 131,072 nodes, 1,048,576 GPUs (issue 19's scale)",
    "gb200-nvl72": "8 SUs of 8 NVL72 racks (18 x 4-GPU nodes each): 1,152 nodes, 4,608 GPUs",
    "tiny": "2 pods x 2 SUs x 4 nodes, 2 rails: 16 nodes, 128 GPUs (for trying things)",
}


def design_for(preset: str | None, **overrides: int | str | None) -> Design:
    if preset is not None and preset not in PRESETS:
        raise RequestError(f"unknown preset {preset!r}; one of {', '.join(PRESETS)}")
    d = PRESETS[preset] if preset else Design()
    given: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    d = replace(d, **given)
    for field_name in ("pods", "sus_per_pod", "nodes_per_su", "gpus_per_node"):
        if getattr(d, field_name) < 1:
            raise RequestError(f"{field_name.replace('_', '-')} must be at least 1, got {getattr(d, field_name)}")
    if d.rails < 0:
        raise RequestError(f"rails must be 0 or more, got {d.rails}")
    if d.nvl_domain_nodes and d.nodes_per_su % d.nvl_domain_nodes:
        raise RequestError(f"nodes-per-su ({d.nodes_per_su}) must be a multiple of the NVLink domain size "
                           f"({d.nvl_domain_nodes})")
    return d


def generate_spec(d: Design) -> FabricSpec:
    width = max(3, len(str(d.nodes)))
    tname = f"{d.gpu_model}x{d.gpus_per_node}"
    spec = FabricSpec(name=d.name, node_types={tname: NodeType(tname, d.gpus_per_node, d.gpu_model,
                                                                (d.gpu_model,))})
    three_tier = d.pods > 1
    leaves_per_pod = d.sus_per_pod * max(d.rails, 1)
    # non-blocking: leaves send half their ports up; spines give half down when a core sits above
    uplinks = leaves_per_pod * (d.switch_ports // 2)
    spines = max(1, -(-uplinks // (d.switch_ports // 2 if three_tier else d.switch_ports)))
    if three_tier:
        cores = max(1, -(-(d.pods * spines * (d.switch_ports // 2)) // d.switch_ports))
        spec.switches.append(SwitchSpec(name="core", path="core", members=[f"core{i:03d}" for i in range(1, cores + 1)],
                                        link_speed=d.link_speed))
    n = 0
    for p in range(1, d.pods + 1):
        pod = f"p{p:02d}-spine" if three_tier else "spine"
        spec.switches.append(SwitchSpec(name=pod, path=pod, parent="core" if three_tier else None,
                                        members=[f"{pod}{i:02d}" for i in range(1, spines + 1)],
                                        link_speed=d.link_speed))
        for s in range(1, d.sus_per_pod + 1):
            su = f"p{p:02d}-su{s:02d}" if three_tier else f"su{s:02d}"
            nodes = [f"{d.node_prefix}{n + k + 1:0{width}d}" for k in range(d.nodes_per_su)]
            n += d.nodes_per_su
            spec.nodes.extend(NodeSpec(x, x, tname) for x in nodes)
            if d.rails:
                for r in range(d.rails):
                    leaf = f"{su}-r{r}"
                    spec.switches.append(SwitchSpec(name=leaf, path=leaf, parent=pod, rail=r, nodes=nodes, su=su,
                                                    link_speed=d.link_speed))
            else:
                spec.switches.append(SwitchSpec(name=su, path=su, parent=pod, nodes=nodes, link_speed=d.link_speed))
            if d.nvl_domain_nodes:
                for k in range(0, d.nodes_per_su, d.nvl_domain_nodes):
                    dn = f"{su}-nvl{k // d.nvl_domain_nodes + 1:02d}"
                    spec.domains.append(DomainSpec(dn, dn, nodes[k : k + d.nvl_domain_nodes]))
    return spec


def generate(d: Design) -> Fabric:
    fabric, _ = build_fabric(generate_spec(d), f"design {d.name}")
    return fabric
