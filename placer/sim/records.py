"""What the simulator keeps per job: its request, when and where it ran, and its measures."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..jobs import JobRequest

Alloc = list[tuple[int, list[int]]]  # (node index, GPU indices) per node


@dataclass
class JobRecord:
    job: JobRequest
    status: str = "pending"  # placed | unplaceable | pending (never started before the trace ended)
    start: float | None = None
    end: float | None = None
    alloc: Alloc = field(default_factory=list)
    multi: bool = False
    size: int = 0  # GPUs per node of the nodes it may use
    nodes_needed: int = 1
    leaves: int = 0
    leaf_bound: int = 0  # fewest leaves on an empty fabric
    pods: int = 0
    pod_bound: int = 0
    cross_pairs: int = 0
    unavoidable_pairs: int = 0
    reason: str = ""
    switch_wait_from: float | None = None  # when the scheduler first evaluated its placement (--switches)
    hold_eta: float | None = None  # placer's hold: when the timeline says a placement within the bound frees
    hold_done: bool = False  # placer's hold gave up (nothing within the bound frees before the deadline)
    leaf_bound_now: int = 0  # fewest leaves the nodes it was offered at its start could hold it in

    @property
    def gpus_taken(self) -> int:
        """GPUs it occupies when it runs: whole nodes for a multi-node job."""
        return self.nodes_needed * self.size if self.multi else self.job.gpus

    @property
    def wait_s(self) -> float | None:
        return self.start - (self.job.submit_time or 0.0) if self.start is not None else None

    def ran(self) -> tuple[float, float]:
        """(start, end) of a placed job."""
        assert self.start is not None and self.end is not None, f"job {self.job.job_id} did not run"
        return self.start, self.end
