"""The hold clock kept between `placer apply` processes (`--state-file`, config key `apply_state_file`).

A chained job's hold counts from when its dependency was seen met (`HoldClock`, plugins/backend.py), and
Slurm keeps no such time for a held job. A watch keeps it in memory; a cron `placer apply --once`, or a
watch restarted after the dependency was met, would count from submission instead and may release the
job unpinned past the hold limit. This file carries the clock across: read before the first pass,
written atomically after a pass that changed it.

    {"version": 1, "waited": [12, 15], "eligible_at": {"15": 1796000000.0}}

A file that is not there is a first run (an empty clock). A file that is there but cannot be read or
does not say the above is refused with every problem named (exit 2): placer never guesses a clock, and
never overwrites what it could not read.
"""
from __future__ import annotations

import fcntl
import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from topology import BackendError, Problem, RequestError
from topology.inputs import exists, parse_json, read_input
from topology.outputs import write_atomic

from .backend import HoldClock

VERSION = 1
KEYS = ("version", "waited", "eligible_at")


def load_clock(path: Path) -> HoldClock:
    """The clock saved at `path`; an empty one when the file does not exist. RequestError naming the file
    and every problem otherwise."""
    if not _there(path):
        return HoldClock()
    text, problem = read_input(path)
    problems: list[Problem] = [problem] if problem is not None else []
    doc = parse_json(text, problems) if text is not None else None
    clock = _clock_of(doc, problems) if not problems else None
    if clock is None or problems:
        problems.append(Problem("", "nothing was done; remove the file to start afresh (held jobs that waited "
                                    "for a dependency then count their hold from submission)", severity="warning"))
        raise RequestError(problems=problems, source=str(path))
    return clock


def _there(path: Path) -> bool:
    """Whether the state file exists (`exists`: one in a directory this user cannot enter is there, and
    reading it says why). RequestError when its directory does not exist."""
    if not exists(path.parent):
        raise RequestError(problems=[Problem("", f"its directory {str(path.parent)!r} does not exist")],
                           source=str(path))
    return exists(path)


def _clock_of(doc: Any, problems: list[Problem]) -> HoldClock | None:
    if not isinstance(doc, dict):
        problems.append(Problem("", "not a JSON object"))
        return None
    problems.extend(Problem(k, f"unknown key (known: {', '.join(KEYS)})") for k in doc if k not in KEYS)
    problems.extend(Problem(k, "missing") for k in KEYS if k not in doc)
    if problems:
        return None
    if type(doc["version"]) is not int or doc["version"] != VERSION:  # (true == 1 in Python)
        problems.append(Problem("version", f"{doc['version']!r}: this placer reads version {VERSION}"))
    waited, eligible = doc["waited"], doc["eligible_at"]
    known = set(waited) if isinstance(waited, list) and all(_job_id(j) for j in waited) else None
    if known is None:
        problems.append(Problem("waited", "not a list of job ids (whole numbers from 1 to 2^32 - 1)"))
    if not isinstance(eligible, dict):
        problems.append(Problem("eligible_at", "not an object of job id -> epoch seconds"))
    else:
        for k, v in eligible.items():
            if not (k.isascii() and k.isdigit() and len(k) <= 10) or not _job_id(int(k)):
                problems.append(Problem(f"eligible_at.{k}", "not a job id"))
            elif isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                problems.append(Problem(f"eligible_at.{k}", f"{v!r} is not a time (epoch seconds)"))
            elif known is not None and int(k) not in known:  # (a set: the list was n^2 at 10,000 jobs)
                problems.append(Problem(f"eligible_at.{k}", "a job not in waited"))
    if problems:
        return None
    return HoldClock(set(waited), {int(k): float(v) for k, v in eligible.items()})


MAX_JOB_ID = 2**32 - 1  # Slurm's job ids are 32-bit


def _job_id(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_JOB_ID


def clock_text(clock: HoldClock) -> str:
    doc = {"version": VERSION, "waited": sorted(clock.waited),
           "eligible_at": {str(j): t for j, t in sorted(clock.eligible_at.items())}}
    return json.dumps(doc, indent=1) + "\n"


def save_if_changed(path: Path, clock: HoldClock, saved: str, errors: list[str]) -> str:
    """Save the clock when it differs from `saved` (the text last written or read); the text now on disk.
    A failure goes to `errors` (the pass's): the file keeps its last whole version."""
    text = clock_text(clock)
    if text == saved:
        return saved
    try:
        save_clock(path, clock)
    except OSError as exc:
        errors.append(f"could not save the hold clock to {path}: {exc.strerror or exc}")
        return saved
    return text


def save_clock(path: Path, clock: HoldClock) -> None:
    """Write the clock atomically (temp file + rename beside it): a crash leaves the old file whole. OSError
    when the directory cannot be written. Readable by the group: `placer serve` (the units' one group) reads
    it; it says no more than squeue shows any user."""
    write_atomic(path, clock_text(clock), 0o640)


@contextmanager
def one_apply(path: Path) -> Iterator[None]:
    """Held while one `placer apply` uses the state file at `path` (an flock on `path.lock`, released when
    the process ends however it ends): two applies at once would pin jobs from two snapshots onto the same
    nodes and overwrite each other's clock. BackendError (exit 3) naming the other's pid."""
    _there(path)
    lock = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:  # a path this user may not write: the user's to mend (exit 2), before any pass
        unwritable = Problem("", f"cannot open its lock file {lock.name}: {exc.strerror or exc}")
        raise RequestError(problems=[unwritable], source=str(path)) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise BackendError(f"another placer apply (pid {other}) is using {path}: one apply at a time") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # (closing drops the lock)
