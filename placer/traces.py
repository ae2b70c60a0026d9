"""Job traces for replay: CSV, the Standard Workload Format, and `sacct --parsable2` output.

Pure functions over text. Malformed lines are errors that name the line; well-formed records that
cannot be replayed (no GPUs, no run time, job steps) are skipped and counted, never silently.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field, replace
from datetime import datetime

from topology import Problem
from topology.inputs import clean_text

from .jobs import JobRequest, job_from_mapping, jobs_from_csv


@dataclass
class Trace:
    jobs: list[JobRequest]
    skipped: dict[str, int] = field(default_factory=dict)
    source_format: str = ""


def parse_csv_trace(text: str, problems: list[Problem]) -> Trace:
    jobs = jobs_from_csv(text, problems)
    out: list[JobRequest] = []
    skipped: dict[str, int] = {}
    for j in jobs:
        if j.submit_time is None or j.duration is None:
            problems.append(Problem(f"job {j.job_id}", "a trace needs submit_time and duration"))
            continue
        out.append(j)
    return Trace(out, skipped, "csv")


SWF_FIELDS = 18
_SWF_NUMBER = re.compile(r"-?\d{1,15}(\.\d{1,15})?")


def parse_swf(text: str, problems: list[Problem]) -> Trace:
    """Standard Workload Format: 18 whitespace-separated fields, ';' comments. Processors are read as
    GPUs (requested processors, field 8, else allocated, field 5); run time is field 4."""
    jobs: list[JobRequest] = []
    skipped: dict[str, int] = {}
    for no, raw in enumerate(clean_text(text).splitlines(), start=1):
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != SWF_FIELDS:
            problems.append(Problem("", f"expected {SWF_FIELDS} fields, got {len(parts)}", line=no))
            continue
        # plain decimals only: float() would also take nan, inf and 1e999, which no trace means
        bad = next((x for x in parts if not _SWF_NUMBER.fullmatch(x)), None)
        if bad is not None:
            problems.append(Problem("", f"field {parts.index(bad) + 1} is not a number: {bad[:40]!r}", line=no))
            continue
        nums = [float(x) for x in parts]
        jid, submit, run = int(nums[0]), nums[1], nums[3]
        procs = int(nums[7]) if nums[7] > 0 else int(nums[4])
        if procs <= 0:
            skipped["no processors (GPUs)"] = skipped.get("no processors (GPUs)", 0) + 1
            continue
        if run <= 0:
            skipped["no run time"] = skipped.get("no run time", 0) + 1
            continue
        j = job_from_mapping({"job_id": jid, "gpus": procs, "submit_time": submit, "duration": run}, "", problems,
                             line=no, strict_keys=False)
        if j is not None:
            jobs.append(j)
    return Trace(jobs, skipped, "swf")


_TRES_GPU = re.compile(r"gres/gpu(?::[^=,]+)?=(\d{1,9})(?!\d)")


def _when(text: str) -> float | None:
    text = text.strip()
    if text in ("", "Unknown", "None", "N/A"):
        return None
    return datetime.fromisoformat(text).timestamp()


def parse_sacct(text: str, problems: list[Problem]) -> Trace:
    """`sacct --parsable2 --format=JobID,Submit,Start,End,ReqTRES,AllocTRES,NNodes,State` (any order,
    more columns allowed). Duration = End - Start; GPUs from AllocTRES (else ReqTRES) gres/gpu."""
    lines = clean_text(text).splitlines()
    if not lines:
        problems.append(Problem("", "empty sacct output", line=1))
        return Trace([], {}, "sacct")
    header = [h.strip() for h in lines[0].split("|")]
    need = ["JobID", "Submit", "Start", "End", "NNodes", "State"]
    missing = [c for c in need if c not in header]
    if missing or not ({"AllocTRES", "ReqTRES"} & set(header)):
        problems.append(Problem("header", f"sacct header lacks {', '.join(missing) or 'AllocTRES/ReqTRES'}; use "
                                          "--parsable2 --format=JobID,Submit,Start,End,ReqTRES,AllocTRES,NNodes,State",
                                line=1))
        return Trace([], {}, "sacct")
    col = {h: i for i, h in enumerate(header)}
    jobs: list[JobRequest] = []
    skipped: dict[str, int] = {}

    def skip(why: str) -> None:
        skipped[why] = skipped.get(why, 0) + 1

    for no, raw in enumerate(lines[1:], start=2):
        if not raw.strip():
            continue
        parts = raw.split("|")
        if len(parts) != len(header):
            problems.append(Problem("", f"expected {len(header)} '|'-separated fields, got {len(parts)}", line=no))
            continue
        jid = parts[col["JobID"]].strip()
        if "." in jid:
            skip("job steps")
            continue
        try:
            submit, start, end = (_when(parts[col[k]]) for k in ("Submit", "Start", "End"))
            nnodes = int(parts[col["NNodes"]] or 0)
        except ValueError as exc:
            problems.append(Problem(f"job {jid}", f"unreadable time or node count: {exc}", line=no))
            continue
        tres = next((parts[col[k]] for k in ("AllocTRES", "ReqTRES") if k in col and parts[col[k]]), "")
        m = _TRES_GPU.search(tres or "")
        gpus = int(m.group(1)) if m else 0
        if gpus <= 0:
            skip("no GPUs")
            continue
        if submit is None or start is None or end is None or end <= start:
            skip("never ran (no start/end)")
            continue
        gpn = gpus // nnodes if nnodes > 1 and gpus % nnodes == 0 else None
        j = job_from_mapping({"job_id": jid, "gpus": gpus, "gpus_per_node": gpn, "submit_time": submit,
                              "duration": end - start}, "", problems, line=no, strict_keys=False)
        if j is not None:
            jobs.append(j)
    if jobs:
        t0 = min(j.submit_time or 0.0 for j in jobs)
        jobs = [replace(j, submit_time=(j.submit_time or 0.0) - t0) for j in jobs]
    return Trace(jobs, skipped, "sacct")


def detect_format(path: str, text: str) -> str:
    head = text.lstrip()[:2000]
    if path.lower().endswith(".swf") or head.startswith(";"):
        return "swf"
    first = head.splitlines()[0] if head else ""
    if "|" in first and "JobID" in first:
        return "sacct"
    return "csv"


def parse_trace(path: str, text: str, fmt: str, problems: list[Problem]) -> Trace:
    text = clean_text(text)
    fmt = detect_format(path, text) if fmt == "auto" else fmt
    parser = {"csv": parse_csv_trace, "swf": parse_swf, "sacct": parse_sacct}[fmt]
    trace = parser(text, problems)
    seen: set[str] = set()
    for j in trace.jobs:
        if j.job_id in seen:
            problems.append(Problem(f"job {j.job_id}", "duplicate job id in the trace"))
        seen.add(j.job_id)
    return trace


def merge_traces(traces: list[tuple[str, Trace]]) -> Trace:
    """Several traces (e.g. Philly's per-VC files) as one stream; ids prefixed when they would clash."""
    jobs: list[JobRequest] = []
    skipped: dict[str, int] = {}
    for name, t in traces:
        for j in t.jobs:
            jobs.append(replace(j, job_id=f"{name}:{j.job_id}") if len(traces) > 1 else j)
        for k, v in t.skipped.items():
            skipped[k] = skipped.get(k, 0) + v
    jobs.sort(key=lambda j: (j.submit_time or 0.0, j.job_id))
    return Trace(jobs, skipped, "+".join(sorted({t.source_format for _, t in traces})))


def write_csv_trace(jobs: list[JobRequest]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["job_id", "submit_time", "duration", "gpus"])
    for j in jobs:
        w.writerow([j.job_id, f"{j.submit_time:.1f}", f"{j.duration:.1f}", j.gpus])
    return buf.getvalue()
