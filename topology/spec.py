"""FabricSpec: the plain, name-based description every importer produces and the builder checks."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class NodeType:
    """What a node is made of. `nvlink_islands` partitions GPU indices; one island = all-to-all."""

    name: str
    gpus: int
    gpu_model: str = "gpu"
    features: tuple[str, ...] = ()
    nvlink_islands: tuple[tuple[int, ...], ...] = ()
    nvlinks: tuple[tuple[int, ...], ...] = ()  # NVLinks between GPU i and j (from nvidia-smi topo -m), optional

    def islands(self) -> tuple[tuple[int, ...], ...]:
        return self.nvlink_islands or (tuple(range(self.gpus)),)


@dataclass
class SwitchSpec:
    """A logical switch: one inventory entry; `members` are the physical switches it stands for."""

    name: str
    path: str
    parent: str | None = None
    rail: int | None = None
    nodes: list[str] = field(default_factory=list)
    members: list[str] = field(default_factory=list)
    link_speed: int | None = None
    su: str | None = None
    line: int | None = None


@dataclass
class NodeSpec:
    name: str
    path: str
    type: str
    state: str = "up"  # up | drain | down
    reason: str = ""
    line: int | None = None


@dataclass
class DomainSpec:
    """A multi-node NVLink domain (e.g. a GB200 NVL72 rack): a level below the leaf."""

    name: str
    path: str
    nodes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LinkSpec:
    """A cable slower or narrower than its peers (topology/links.py): its ends by node or switch name."""

    a: str
    b: str
    link: str  # what it runs at, e.g. 2xNDR
    usual: str  # what its peers run at, e.g. 4xNDR
    path: str = ""


@dataclass(frozen=True)
class Location:
    """Where a node or switch physically is, for the technician (all optional)."""

    rack: str | None = None
    row: str | None = None
    u: int | None = None  # the lowest rack unit it occupies
    serial: str | None = None
    asset: str | None = None

    def text(self) -> str:
        parts = [f"row {self.row}" if self.row else "", f"rack {self.rack}" if self.rack else "",
                 f"U{self.u}" if self.u is not None else "", f"SN {self.serial}" if self.serial else "",
                 f"asset {self.asset}" if self.asset else ""]
        return " ".join(p for p in parts if p)

    def as_data(self) -> dict[str, str | int]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class FabricSpec:
    name: str
    node_types: dict[str, NodeType] = field(default_factory=dict)
    switches: list[SwitchSpec] = field(default_factory=list)
    nodes: list[NodeSpec] = field(default_factory=list)
    domains: list[DomainSpec] = field(default_factory=list)
    degraded_links: list[LinkSpec] = field(default_factory=list)
    locations: dict[str, Location] = field(default_factory=dict)  # node or switch name -> where it is


NODE_STATES = ("up", "drain", "down")
