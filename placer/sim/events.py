"""The simulator's clock: arrivals in submit order, job ends, and timer wake-ups (jobs waiting under
--switches give up waiting), each popped in time order."""
from __future__ import annotations

import heapq
import math

from ..jobs import JobRequest


class Clock:
    def __init__(self, jobs: list[JobRequest]) -> None:
        self.jobs = jobs
        # arrivals by submit time, then priority (higher first), then input order
        self.order = sorted(range(len(jobs)), key=lambda i: (jobs[i].submit_time or 0.0, -jobs[i].priority, i))
        self.arrived = 0
        self.ends: list[tuple[float, int]] = []  # (end time, job) of running jobs
        self.timers: list[float] = []
        self.timer_jobs: set[tuple[int, float]] = set()

    def pending(self, queue_waiting: bool) -> bool:
        """Anything left to happen: arrivals, running jobs, or timers while jobs wait."""
        return self.arrived < len(self.order) or bool(self.ends) or (bool(self.timers) and queue_waiting)

    def _next_arrival(self) -> float:
        if self.arrived < len(self.order):
            return self.jobs[self.order[self.arrived]].submit_time or 0.0
        return math.inf

    def advance(self, queue_waiting: bool) -> float:
        """The time of the next event; timers due by then are spent (a timer only wakes the scheduler)."""
        t_arr = self._next_arrival()
        t_end = self.ends[0][0] if self.ends else math.inf
        t_timer = self.timers[0] if self.timers else math.inf
        if t_timer < min(t_arr, t_end) and not queue_waiting:
            self.timers.clear()  # nobody waits any more: the timers are moot
            t_timer = math.inf
        t = min(t_arr, t_end, t_timer)
        while self.timers and self.timers[0] <= t:
            heapq.heappop(self.timers)
        return t

    def ended_by(self, t: float) -> list[int]:
        out = []
        while self.ends and self.ends[0][0] <= t:
            out.append(heapq.heappop(self.ends)[1])
        return out

    def arrivals_by(self, t: float) -> list[int]:
        out = []
        while self.arrived < len(self.order) and (self.jobs[self.order[self.arrived]].submit_time or 0.0) <= t:
            out.append(self.order[self.arrived])
            self.arrived += 1
        return out

    def job_ends(self, end: float, j: int) -> None:
        heapq.heappush(self.ends, (end, j))

    def wake_at(self, key: int, when: float) -> None:
        """One wake-up per waiting job and time (its --switches deadline, placer's expected free time)."""
        if (key, when) not in self.timer_jobs:
            self.timer_jobs.add((key, when))
            heapq.heappush(self.timers, when)
