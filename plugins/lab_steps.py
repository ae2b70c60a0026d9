"""A lab's job steps that outlived it. slurmstepd daemonises: stopping slurmd leaves it and the job's
processes running, and the lab cancels its jobs first only when slurmctld answers. A step left behind
reports to the next lab of the same directory ("Batch completion for JobId=2 sent from wrong node"), whose
new job of that id is then lost. So `down` and `up` end them: a slurmstepd is the lab's when its working
directory or an open file lies under the lab's directory (seen directly, or through the chroot's bind
mount of it); it is stopped by pid with every process below it.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process now (the comm field may hold spaces and parentheses)."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _read(f"/proc/{entry}/stat")
            fields = stat[stat.rfind(b")") + 2:].split()
            if len(fields) > 1:
                out[int(entry)] = int(fields[1])
    return out


def _uses(pid: int, prefixes: tuple[str, ...]) -> bool:
    """The process works in, or holds a file under, one of the prefixes."""
    links = [f"/proc/{pid}/cwd"]
    try:
        links += [f"/proc/{pid}/fd/{fd}" for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:
        return False
    for link in links:
        try:
            target = os.readlink(link)
        except OSError:
            continue
        if target.startswith(prefixes):
            return True
    return False


def leftover_steps(base: Path, root: Path | None = None) -> list[int]:
    """Pids of slurmstepd processes of the lab under `base` (chroot `root`, if any), and of their jobs'
    processes, deepest first."""
    prefixes = (f"{base}/",) + ((f"{root}{base}/",) if root is not None else ())
    parents = _parents()
    steps = [p for p in parents if _read(f"/proc/{p}/cmdline").startswith(b"slurmstepd") and _uses(p, prefixes)]
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    order: list[int] = []
    todo = list(steps)
    while todo:
        pid = todo.pop()
        order.append(pid)
        todo += children.get(pid, [])
    return order[::-1]


def end_leftover_steps(base: Path, root: Path | None = None) -> int:
    """SIGKILL the lab's leftover steps and their jobs (children first, so none is re-parented unseen);
    returns how many processes were signalled."""
    pids = leftover_steps(base, root)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(pids)
