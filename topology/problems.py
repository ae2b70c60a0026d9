"""Problems found in user input, and the small exception hierarchy that carries them."""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

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

    def as_data(self) -> dict[str, Any]:
        return {"severity": self.severity, "path": self.path, "line": self.line, "message": self.message,
                "kind": kind_of(self)}


# what varies between problems of one kind: quoted names, GUIDs and numbers
_VARYING = re.compile(r"'[^']*'|\"[^\"]*\"|\b(?:0x)?[0-9a-fA-F]{12,}\b|\b\d[\d,.]*\b")
EXAMPLES = 5  # a grouped line names at most this many


def kind_of(p: Problem) -> str:
    """The problem's message with what varies (names, GUIDs, numbers) as '…': problems of one kind group."""
    return _VARYING.sub("…", p.message)


def shown(items: list[str], limit: int = EXAMPLES) -> str:
    """At most `limit` items, then '… and N more': long lists never fill a terminal line."""
    head = ", ".join(items[:limit])
    return head + (f" … and {len(items) - limit} more" if len(items) > limit else "")


def _example(p: Problem) -> str:
    first = _VARYING.search(p.message)
    what = first.group(0) if first else p.path or p.message[:40]
    return f"{what} (line {p.line})" if p.line is not None else what


def render_grouped(problems: Iterable[Problem], source: str | None = None, verbose: bool = False,
                   min_group: int = 2) -> list[str]:
    """One line per kind of problem with its count and a few examples (`verbose`: every problem). A kind
    with fewer than `min_group` members prints each problem in full, so nothing is lost."""
    items = list(problems)
    if verbose:
        return [p.render(source) for p in items]
    kinds: dict[tuple[str, str], list[Problem]] = {}
    for p in items:
        kinds.setdefault((p.severity, kind_of(p)), []).append(p)
    out: list[str] = []
    for (severity, kind), ps in kinds.items():
        if len(ps) < min_group:
            out.extend(p.render(source) for p in ps)
            continue
        where = f"{source}: " if source else ""
        out.append(f"{where}{severity} ({len(ps)}x): {kind}: {shown([_example(p) for p in ps])}")
    return out


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

    def render(self, verbose: bool = False) -> str:
        """Errors of one kind grouped when there are many (ERRORS_GROUPED_FROM); `verbose`: every one."""
        return "\n".join(render_grouped(self.problems, self.source, verbose, ERRORS_GROUPED_FROM))


ERRORS_GROUPED_FROM = 6  # a few errors of a kind print in full (each must be fixed); more are grouped


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
