"""Which nodes a job may use now, and why the others are excluded (counted, for explanations)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from topology import ClusterState

from .constraints import parse_constraint
from .index import FabricIndex
from .islands import best_island_free
from .jobs import JobRequest


@dataclass
class Eligibility:
    multi_node: bool
    gpus_per_node: int  # node size the job uses (multi-node: whole nodes of exactly this many GPUs)
    nodes_needed: int  # 1 for single-node jobs
    static: np.ndarray  # bool per node: could ever host the job (features, size, not excluded, in service)
    now: np.ndarray  # bool per node: can host it in the current state
    ready: np.ndarray  # bool per node: can host it once free (in service, and as `static`); only frees move it to `now`
    excluded: dict[str, int]  # reason -> node count, each node counted once, first reason wins
    use_last: np.ndarray | None = None  # bool per node: taken only when the cost is the same without it


# what `JobRequest.exclude` holds: the job's own --exclude, and what plugins/requests.py adds
EXCLUDED = "excluded by the job (--exclude) or a Slurm reservation it would run into"


def _static_mask(ix: FabricIndex, job: JobRequest, alternative: int | None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    f = ix.fabric
    c = parse_constraint(job.constraint)[0] if job.constraint else None  # unreadable ones never get here
    feat_ok_type = np.array([set(job.features) <= feats
                             and (job.gpu_model is None or t.gpu_model.lower() == job.gpu_model)
                             and (c is None or c.allows(feats, alternative))
                             for feats, t in zip(ix.type_features, ix.fabric.node_types)], dtype=bool)
    feat_ok = feat_ok_type[f.node_type] if f.n_nodes else np.zeros(0, dtype=bool)
    not_excl = np.ones(f.n_nodes, dtype=bool)
    for name in job.exclude:
        i = f.node_index.get(name)
        if i is not None:
            not_excl[i] = False
    return feat_ok, not_excl, _in_partition(ix, job)


def allowed_mask(ix: FabricIndex, job: JobRequest, alternative: int | None = None) -> np.ndarray:
    """Per node: the job's constraints allow it (features, GPU model, -C, partition, --exclude), whatever
    its size or state (`placer reserve` plans a hero run on these)."""
    feat_ok, not_excl, in_part = _static_mask(ix, job, alternative)
    ok = feat_ok & not_excl
    return ok if in_part is None else ok & in_part


# partition node lists -> masks, by identity: the daemon hands every job of a partition the same tuple
# (until its next refresh), and building the mask is a Python loop over the partition's names
_PART_MASKS: dict[tuple[int, int], tuple[FabricIndex, tuple[str, ...], np.ndarray]] = {}


def _in_partition(ix: FabricIndex, job: JobRequest) -> np.ndarray | None:
    """The job's partition's nodes; None when not known (every node, and no array on the hot path)."""
    f, nodes = ix.fabric, job.partition_nodes
    if nodes is None:
        return None
    hit = _PART_MASKS.get((id(ix), id(nodes)))
    if hit is not None and hit[0] is ix and hit[1] is nodes:
        return hit[2]
    mask = np.zeros(f.n_nodes, dtype=bool)
    mask[[f.node_index[n] for n in nodes if n in f.node_index]] = True
    mask.flags.writeable = False  # shared between jobs
    if len(_PART_MASKS) >= 64:
        _PART_MASKS.clear()
    _PART_MASKS[(id(ix), id(nodes))] = (ix, nodes, mask)
    return mask


def eligibility(ix: FabricIndex, state: ClusterState, job: JobRequest, spares: np.ndarray | None = None,
                alternative: int | None = None) -> Eligibility:
    """`alternative`: one alternative of a matching-OR constraint (`[a|b]`); None: any of them."""
    f = ix.fabric
    feat_ok, not_excl, in_part = _static_mask(ix, job, alternative)
    node_gpus = ix.fabric.node_gpus
    candidates = feat_ok & not_excl if in_part is None else feat_ok & not_excl & in_part
    if spares is not None:
        candidates = candidates & ~spares
    # node size: the job's own, else the largest among nodes that could host it
    if job.gpus_per_node is not None:
        size = job.gpus_per_node
    else:
        sizes = node_gpus[candidates]
        size = int(sizes.max()) if sizes.size else int(node_gpus.max(initial=1))
    multi = job.multi_node(size)
    need = job.nodes_needed(size)
    in_service = state.usable
    if multi:
        size_ok = node_gpus == size
        busy = state.free_mask != state.full_mask
    else:
        size_ok = node_gpus >= job.gpus
        busy = ~_island_fits(ix, state, job.gpus)
    static = candidates & size_ok & (f.node_state == 0)
    ready = candidates & size_ok & in_service
    off = job.off_mask  # kept off now only (too few CPUs left): not in `static` or `ready`
    now = ready & ~busy if off is None else ready & ~busy & ~off
    excluded: dict[str, int] = {}
    remaining = np.ones(f.n_nodes, dtype=bool)
    outside = ~in_part if in_part is not None else None
    for reason, bad in (("down or drained", ~in_service), ("kept as hot spares", spares),
                        ("outside the job's partition", outside),
                        (EXCLUDED, ~not_excl),
                        ("lacking features or GPU model", ~feat_ok),
                        (f"not {size}-GPU nodes" if multi else "too few GPUs", ~size_ok),
                        ("busy", busy), ("too few CPUs left", off)):
        if bad is None:
            continue
        hit = int((bad & remaining).sum())
        if hit:
            excluded[reason] = hit
        remaining &= ~bad
    return Eligibility(multi, size, need, static, now, ready, excluded)


def _island_fits(ix: FabricIndex, state: ClusterState, gpus: int) -> np.ndarray:
    """Per node: some NVLink island has `gpus` free GPUs."""
    return best_island_free(ix, state, gpus) >= 0
