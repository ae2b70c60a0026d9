"""PNG plots of simulation runs (matplotlib, no display needed)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from placer.sim import JobRecord  # noqa: E402
from topology import Fabric  # noqa: E402


def _time_grid(runs: dict[str, list[JobRecord]], bins: int = 200) -> np.ndarray:
    """From the first submit to the 99th percentile of job ends: a long tail of a few jobs would
    otherwise squeeze the busy part into a sliver."""
    t0 = min((r.job.submit_time or 0.0) for recs in runs.values() for r in recs)
    ends = [r.end for recs in runs.values() for r in recs if r.end is not None]
    t1 = float(np.percentile(ends, 99)) if ends else t0 + 1
    return np.linspace(t0, max(t1, t0 + 1), bins + 1)


def _coverage(r: JobRecord, grid: np.ndarray) -> np.ndarray:
    """Share of each time bin that the job's [start, end) covers."""
    start, end = r.ran()
    lo = np.clip(start, grid[:-1], grid[1:])
    hi = np.clip(end, grid[:-1], grid[1:])
    return (hi - lo) / np.diff(grid)


def _busy_over_time(recs: list[JobRecord], grid: np.ndarray, weight) -> np.ndarray:
    """Mean of `weight(record)` busy within each time bin."""
    out = np.zeros(grid.size - 1)
    for r in recs:
        if r.status == "placed":
            out += weight(r) * _coverage(r, grid)
    return out


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def write_plots(fabric: Fabric, runs: dict[str, list[JobRecord]], directory: str) -> list[str]:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    written = []
    hours = 3600.0

    # 1. leaves over the bound, multi-node jobs
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(len(runs), 1)
    for k, (name, recs) in enumerate(runs.items()):
        over = np.asarray([r.leaves - r.leaf_bound for r in recs if r.status == "placed" and r.nodes_needed > 1])
        if not over.size:
            continue
        counts = np.bincount(over, minlength=6)[:6] / over.size
        ax.bar(np.arange(6) + k * width, counts, width, label=name)
    ax.set_xlabel("leaves over the leaf lower bound")
    ax.set_ylabel("share of multi-node jobs")
    ax.set_xticks(np.arange(6) + 0.4 - width / 2, ["0", "1", "2", "3", "4", "5+"])
    ax.legend()
    ax.set_title("Leaves spanned beyond the fewest possible")
    written.append(_save(fig, d / "leaves-over-bound.png"))

    # 2. wait-time CDF
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, recs in runs.items():
        w = np.sort([max(r.wait_s or 0.0, 0.0) for r in recs if r.status == "placed"])
        if w.size:
            ax.step(np.maximum(w, 1.0) / hours, np.arange(1, w.size + 1) / w.size, where="post", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("wait (hours, log; under 1 s shown at 1 s)")
    ax.set_ylabel("share of jobs")
    ax.legend()
    ax.set_title("Wait time CDF")
    written.append(_save(fig, d / "wait-cdf.png"))

    # 3. utilisation over time
    grid = _time_grid(runs)
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, recs in runs.items():
        busy = _busy_over_time(recs, grid, lambda r: sum(len(ids) for _, ids in r.alloc))
        ax.plot((grid[:-1] - grid[0]) / hours, busy / fabric.total_gpus, label=name)
    ax.set_xlabel("trace time (hours)")
    ax.set_ylabel("GPUs in use (share)")
    ax.set_ylim(0, 1.05)
    ax.legend()
    ax.set_title("Utilisation over time (until 99% of jobs have ended)")
    written.append(_save(fig, d / "utilisation.png"))

    # 4. per-leaf occupancy heat map, one per policy
    for name, recs in runs.items():
        occ = np.zeros((fabric.n_leaves, grid.size - 1))
        for r in recs:
            if r.status != "placed":
                continue
            frac = _coverage(r, grid)
            for n, ids in r.alloc:
                occ[int(fabric.node_leaf[n])] += len(ids) * frac
        cap = np.bincount(fabric.node_leaf, weights=fabric.node_gpus, minlength=fabric.n_leaves)[:, None]
        fig, ax = plt.subplots(figsize=(8, 4.5))
        im = ax.imshow(occ / np.maximum(cap, 1), aspect="auto", origin="lower", vmin=0, vmax=1, cmap="viridis",
                       extent=(0, (grid[-1] - grid[0]) / hours, 0, fabric.n_leaves))
        ax.set_xlabel("trace time (hours)")
        ax.set_ylabel("leaf (placement tree order)")
        ax.set_title(f"Per-leaf GPU occupancy: {name} (until 99% of jobs have ended)")
        fig.colorbar(im, ax=ax, label="share of the leaf's GPUs in use")
        written.append(_save(fig, d / f"leaf-occupancy-{name}.png"))
    return written


def write_leaf_heatmap(fabric: Fabric, leaves: list[dict], path: str) -> str:
    """`placer status --plot`: one row per level-1 group (pod), one cell per leaf in it, coloured by the
    share of its usable GPUs in use; grey: no usable GPU (down or drained)."""
    from placer.index import index_for

    ix = index_for(fabric)
    by_name = {lf["leaf"]: lf for lf in leaves}
    rows: dict[int, list[float]] = {}
    for leaf in ix.leaf_order.tolist():
        lf = by_name.get(fabric.group_names[leaf])
        if lf is None:
            continue
        pod = int(ix.anc[1][leaf]) if ix.depth > 1 else -1
        busy = np.nan if lf["usable_gpus"] == 0 else 1 - lf["free_gpus"] / lf["usable_gpus"]
        rows.setdefault(pod, []).append(busy)
    width = max((len(r) for r in rows.values()), default=1)
    grid = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows.values()):
        grid[i, : len(r)] = r
    fig, ax = plt.subplots(figsize=(min(max(6.0, 3 + width * 0.35), 24), min(2.5 + len(rows) * 0.3, 40)))
    cmap = plt.get_cmap("viridis").with_extremes(bad="lightgrey")
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([fabric.group_names[p] if p >= 0 else fabric.name for p in rows], fontsize=7)
    ax.set_xlabel("leaf (scalable unit) within its group, in rank order")
    ax.set_title(f"{fabric.name}: each leaf's usable GPUs in use\n(grey: down or drained)", fontsize=9)
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    fig.colorbar(im, ax=ax, fraction=0.03)
    return _save(fig, Path(path))
