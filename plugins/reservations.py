"""A Slurm reservation for a hero run: the one place its `scontrol` command is written (printed by
`placer reserve`, run by `--apply`)."""
from __future__ import annotations

import time
from dataclasses import dataclass

from .slurm_cli import Runner


@dataclass(frozen=True)
class ReservationSpec:
    name: str
    start: float  # epoch seconds; at or before now: StartTime=now
    duration_s: float
    nodes: str  # a hostlist
    users: str  # who may run in it (Slurm needs Users= or Accounts=)
    ignore_jobs: bool = False  # its nodes are busy at the start (jobs to be requeued): Flags=IGNORE_JOBS

    def argv(self, now: float) -> list[str]:
        start = "now" if self.start <= now + 1 else time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.start))
        minutes = max(1, -(-int(self.duration_s) // 60))
        return ["scontrol", "create", "reservation", f"ReservationName={self.name}", f"StartTime={start}",
                f"Duration={minutes}", f"Nodes={self.nodes}", f"Users={self.users}",
                *(["Flags=IGNORE_JOBS"] if self.ignore_jobs else [])]


def requeue_argv(job_ids: list[str]) -> list[str]:
    """Running jobs back to the queue (Slurm starts them again later; their work so far is lost)."""
    return ["scontrol", "requeue", ",".join(job_ids)]


def create_reservation(run: Runner, spec: ReservationSpec, now: float) -> str:
    """Create it; Slurm's answer (`Reservation created: NAME`). A refusal is a BackendError naming it."""
    return run(spec.argv(now)).strip()
