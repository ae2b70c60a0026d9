"""Synthetic job streams from a published job-size shape (Alibaba's 2026 spot-GPU trace), scaled to a
fabric and an offered load. Pure: the distribution tables come in as plain data."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from topology import RequestError

from .jobs import JobRequest


@dataclass(frozen=True)
class SizeShape:
    workers: np.ndarray  # workers per job (multi-worker jobs take that many whole nodes)
    worker_p: np.ndarray
    single_gpus: np.ndarray  # GPUs of a one-worker job
    single_p: np.ndarray
    duration_q: np.ndarray  # quantiles (0..1) and their durations in seconds
    duration_s: np.ndarray


def shape_from_tables(worker_rows: list[tuple[int, int]], duration_rows: list[tuple[float, float]],
                      single_rows: list[tuple[int, float]] | None = None) -> SizeShape:
    if not worker_rows or not duration_rows:
        raise RequestError("the distribution needs worker counts and duration quantiles")
    w = np.asarray([r[0] for r in worker_rows], dtype=np.int64)
    p = np.asarray([r[1] for r in worker_rows], dtype=float)
    single = single_rows or [(1, 0.64), (2, 0.05), (4, 0.055), (8, 0.098)]
    sg = np.asarray([r[0] for r in single], dtype=np.int64)
    sp = np.asarray([r[1] for r in single], dtype=float)
    q = [0.0] + [r[0] for r in duration_rows] + [1.0]
    d = [60.0] + [r[1] for r in duration_rows]
    d.append(d[-1] * 3)
    return SizeShape(w, p / p.sum(), sg, sp / sp.sum(), np.asarray(q), np.asarray(d))


def generate_trace(shape: SizeShape, total_gpus: int, nodes: int, gpus_per_node: int, jobs: int, load: float,
                   seed: int = 0, max_duration_s: float = 7 * 86400) -> list[JobRequest]:
    """`jobs` jobs, Poisson arrivals at a rate giving `load` x the fabric's GPUs in offered work."""
    if jobs < 1 or load <= 0:
        raise RequestError("need jobs >= 1 and load > 0")
    rng = np.random.default_rng(seed)
    workers = rng.choice(shape.workers, size=jobs, p=shape.worker_p)
    workers = np.minimum(workers, nodes)
    single = rng.choice(shape.single_gpus, size=jobs, p=shape.single_p)
    gpus = np.where(workers > 1, workers * gpus_per_node, np.minimum(single, gpus_per_node))
    u = rng.random(jobs)
    logd = np.interp(u, shape.duration_q, np.log(shape.duration_s))
    duration = np.minimum(np.exp(logd), max_duration_s).round(1)
    mean_work = float((gpus * duration).mean())
    rate = load * total_gpus / mean_work  # jobs per second
    submit = np.cumsum(rng.exponential(1.0 / rate, size=jobs))
    submit -= submit[0]
    return [JobRequest(job_id=f"g{i}", gpus=int(g), gpus_per_node=gpus_per_node if w > 1 else None,
                       submit_time=float(round(s, 1)), duration=float(d))
            for i, (g, w, s, d) in enumerate(zip(gpus, workers, submit, duration))]


def scale_to_load(jobs: list[JobRequest], total_gpus: int, load: float) -> list[JobRequest]:
    """Compress (or stretch) arrival times so the stream offers `load` x the fabric's GPUs in work."""
    if not jobs:
        return jobs
    work = sum(j.gpus * (j.duration or 0.0) for j in jobs)
    t0 = min(j.submit_time or 0.0 for j in jobs)
    span = max(j.submit_time or 0.0 for j in jobs) - t0
    if span <= 0 or work <= 0:
        return jobs
    factor = work / (load * total_gpus * span)
    return [replace(j, submit_time=((j.submit_time or 0.0) - t0) * factor) for j in jobs]
