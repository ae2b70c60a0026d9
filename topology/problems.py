"""Problems found in user input, and the small exception hierarchy that carries them."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One finding: where (a path into the input, with a line when the source has lines) and what."""

    path: str
    message: str
    severity: Severity = "error"
    line: int | None = None

    def render(self, source: str | None = None) -> str:
        where = source or ""
        if self.line is not None:
            where = f"{where}:{self.line}" if where else f"line {self.line}"
        loc = f"{where}: " if where else ""
        path = f"{self.path}: " if self.path else ""
        return f"{loc}{self.severity}: {path}{self.message}"


class PlacerError(Exception):
    """Root of every error this project raises on purpose."""


class InventoryError(PlacerError):
    """A fabric description (inventory, Slurm config, dump) is unusable; carries every problem found."""

    def __init__(self, problems: Iterable[Problem], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        errors = [p for p in self.problems if p.severity == "error"]
        head = f"{len(errors)} problem(s)" + (f" in {source}" if source else "")
        super().__init__(head)

    def render(self) -> str:
        return "\n".join(p.render(self.source) for p in self.problems)


class RequestError(PlacerError):
    """A request (job, jobs file, plan document, command option) that makes no sense.

    Either one message, or every problem found in an input file (rendered like InventoryError's).
    """

    def __init__(self, message: str = "", problems: Iterable[Problem] = (), source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__(message or f"{len(self.problems)} problem(s)" + (f" in {source}" if source else ""))

    def render(self) -> str:
        if not self.problems:
            return f"error: {self}"
        return "\n".join(p.render(self.source) for p in self.problems)


class BackendError(PlacerError):
    """Slurm (or another outside system) failed; the message names the command and its stderr."""


def errors_in(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]
