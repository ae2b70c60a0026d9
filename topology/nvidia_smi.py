"""NVLink inside a node from `nvidia-smi topo -m`, and multi-node NVLink domains from `node,clique_id` CSV."""
from __future__ import annotations

import csv
import io
import re

from networkx.utils import UnionFind

from .build import build_fabric
from .fabric import Fabric
from .inputs import clean_text
from .problems import InventoryError, Problem, RequestError
from .spec import DomainSpec, NodeType
from .subset import fabric_to_spec

_NV = re.compile(r"^NV(\d{1,4})$")
PATH_KINDS = {"X", "PIX", "PXB", "PHB", "NODE", "SYS", "SOC", "NV"}


def _row_counts(name: str, cells: list[str], gpu_cols: list[str], line: int, problems: list[Problem]) -> list[int]:
    """One GPU's row: NVLinks to each GPU (-1 for itself); PCIe/SMP paths count 0."""
    out = [0] * len(cells)
    for j, cell in enumerate(cells):
        nv = _NV.match(cell)
        if cell == "X":
            out[j] = -1
        elif nv:
            out[j] = int(nv.group(1))
        elif cell not in PATH_KINDS:
            problems.append(Problem(f"{name}/{gpu_cols[j]}", f"unknown link kind {cell!r} (expected X, NV#, PIX, "
                                                             f"PXB, PHB, NODE or SYS)", line=line))
    return out


def parse_topo_matrix(text: str, source: str = "nvidia-smi topo -m") -> tuple[int, tuple[tuple[int, ...], ...]]:
    """The GPU-to-GPU part of the matrix: (GPU count, NVLink counts; -1 on the diagonal)."""
    lines = [l.rstrip("\n") for l in clean_text(text).splitlines()]
    def is_header(line: str) -> bool:  # "\tGPU0\tGPU1..." (a data row reads "GPU0  X  NV18 ...")
        t = line.split()
        return len(t) > 1 and t[0] == "GPU0" and t[1] in ("GPU1", "NIC0", "CPU", "mlx5_0")

    header_no = next((i for i, l in enumerate(lines) if is_header(l)), None)
    if header_no is None:
        raise InventoryError([Problem("", "no header row with GPU0 ... (expected `nvidia-smi topo -m` output)",
                                      line=1)], source)
    cols = [c.strip() for c in re.split(r"\t+|\s{2,}", lines[header_no].strip()) if c.strip()]
    gpu_cols = [c for c in cols if re.fullmatch(r"GPU\d+", c)]
    n = len(gpu_cols)
    counts = [[0] * n for _ in range(n)]
    seen = set()
    problems = []
    for no in range(header_no + 1, len(lines)):
        row = lines[no].strip()
        m = re.match(r"^(GPU\d+)\s+(.*)$", row)
        if not m:
            continue
        name, rest = m.group(1), m.group(2)
        cells = rest.split()
        if name not in gpu_cols:
            problems.append(Problem(name, f"row {name} has no column in the header", line=no + 1))
            continue
        if len(cells) < n:
            problems.append(Problem(name, f"expected {n} GPU columns, got {len(cells)}", line=no + 1))
            continue
        i = gpu_cols.index(name)
        seen.add(i)
        counts[i] = _row_counts(name, cells[:n], gpu_cols, no + 1, problems)
    missing = [g for k, g in enumerate(gpu_cols) if k not in seen]
    if missing:
        problems.append(Problem("", f"no rows for {', '.join(missing)}"))
    for i in range(n):
        for j in range(n):
            if i != j and counts[i][j] != counts[j][i] and not problems:
                problems.append(Problem(f"GPU{i}/GPU{j}", f"asymmetric: {counts[i][j]} vs {counts[j][i]} NVLinks"))
    if problems:
        raise InventoryError(problems, source)
    return n, tuple(tuple(r) for r in counts)


def node_type_from_topo(text: str, name: str, gpu_model: str = "gpu", features: tuple[str, ...] = (),
                        source: str = "nvidia-smi topo -m") -> NodeType:
    n, counts = parse_topo_matrix(text, source)
    if n < 1:
        raise InventoryError([Problem("", "the matrix shows no GPU")], source)
    uf = UnionFind(range(n))
    for i in range(n):
        for j in range(n):
            if i != j and counts[i][j] > 0:
                uf.union(i, j)
    groups = [sorted(g) for g in uf.to_sets()]
    islands = tuple(tuple(g) for g in sorted(groups))
    return NodeType(name, n, gpu_model, features, islands if len(islands) > 1 else (), counts)


def parse_clique_csv(text: str, source: str = "cliques.csv") -> dict[str, list[str]]:
    """`node,clique_id` (header required) -> {clique: [nodes]} in file order."""
    reader = csv.reader(io.StringIO(clean_text(text)))
    problems: list[Problem] = []
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise InventoryError([Problem("", "empty file: expected a header node,clique_id", line=1)], source) from None
    if header[:2] != ["node", "clique_id"]:
        raise InventoryError([Problem("header", f"expected the header node,clique_id, got {','.join(header)}",
                                      line=1)], source)
    out: dict[str, list[str]] = {}
    seen: dict[str, int] = {}
    for row in reader:
        no = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            problems.append(Problem("", f"expected node,clique_id, got {','.join(row)}", line=no))
            continue
        node, clique = row[0].strip(), row[1].strip()
        if node in seen:
            problems.append(Problem(node, f"node listed twice (first at line {seen[node]})", line=no))
            continue
        seen[node] = no
        out.setdefault(clique, []).append(node)
    if problems:
        raise InventoryError(problems, source)
    return out


def with_node_type(base: Fabric, t: NodeType, source: str, base_source: str) -> tuple[Fabric, list[Problem]]:
    """`base` (read from `base_source`) with node type `t.name` replaced (or added) by `t`, read from the
    matrix in `source`: same GPU count only."""
    spec = fabric_to_spec(base)
    old = spec.node_types.get(t.name)
    if old is not None and old.gpus != t.gpus:
        raise RequestError(f"{source} shows {t.gpus} GPUs but node type {t.name!r} in {base_source} has {old.gpus}")
    problems = []
    if old is None:
        problems.append(Problem(f"node_types.{t.name}", f"no node of {base_source} uses the new type {t.name!r} "
                                                        f"yet", "warning"))
    spec.node_types[t.name] = t
    fabric, warnings = build_fabric(spec, base_source)
    return fabric, problems + warnings


def with_domains(base: Fabric, cliques: dict[str, list[str]], source: str) -> tuple[Fabric, list[Problem]]:
    """`base` with its NVLink domains replaced by these cliques (`parse_clique_csv`)."""
    spec = fabric_to_spec(base)
    spec.domains = [DomainSpec(f"clique-{c}", f"{source}: clique {c}", nodes) for c, nodes in cliques.items()]
    return build_fabric(spec, source)
