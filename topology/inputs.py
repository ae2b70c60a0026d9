"""Reading what users and Slurm hand us, within bounds: files, text, YAML and JSON documents.

Every parser starts here, so one set of limits holds everywhere (docs/limits.md says why each number):
a file is at most MAX_FILE_BYTES; a byte-order mark is dropped and CRLF/CR line ends become LF; YAML
documents nest at most MAX_DEPTH deep and hold at most MAX_VALUES values once aliases are expanded
(JSON nests as deep as Python's parser goes, its RecursionError becoming a problem: nothing of ours
recurses over JSON); both carry integers of at most MAX_INT_DIGITS digits, only finite numbers, and
never the same key twice in one mapping. A breach is a Problem naming the path (and line), never a
crash or a guess.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

from .problems import Problem

MAX_FILE_BYTES = 1 << 30  # 1 GiB: a 131,072-node inventory is ~10 MB, a year of sacct ~1 GB
MAX_DEPTH = 64  # no input of ours nests deeper than ~6; Python's own parsers recurse
MAX_VALUES = 20_000_000  # values in one YAML document after aliases expand (an "alias bomb" stops here)
MAX_INT_DIGITS = 20  # Slurm's largest value is a uint64 (NO_VAL64 = 18446744073709551614, 20 digits)

try:  # libyaml's C parser: 10x faster on the 27,648-node fabrics
    _Base: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _Base = yaml.SafeLoader

_INT_TAG, _FLOAT_TAG, _MERGE_TAG = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:merge"


def clean_text(text: str) -> str:
    """Text as a parser wants it: no byte-order mark, LF line ends (files saved on Windows or by terminals)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def exists(path: str | Path) -> bool:
    """Whether something is at `path` (a dangling link counts). True as well when a directory on the way
    cannot be entered: `Path.exists` raises PermissionError there (a user other than the owner), and
    reading the file then says so, where False would silently skip a file the site meant."""
    p = Path(path)
    try:
        return p.exists() or p.is_symlink()
    except OSError:
        return True


def read_input(path: str | Path, replace_undecodable: bool = False) -> tuple[str | None, Problem | None]:
    """A UTF-8 text file, cleaned (see clean_text), or the problem that stopped reading it. With
    `replace_undecodable` (a job trace: sacct prints users' job names and comments as their bytes) bytes that
    are not UTF-8 read as U+FFFD, and the problem returned beside the text is a warning counting them."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            return None, Problem("", f"file is {size:,} bytes; placer reads at most {MAX_FILE_BYTES:,}")
        with p.open("rb") as fh:  # a FIFO or /dev/zero reports no size: read no more than the limit
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return None, Problem("", f"cannot read file: {exc.strerror or exc}")
    if len(data) > MAX_FILE_BYTES:
        return None, Problem("", f"file is over {MAX_FILE_BYTES:,} bytes, the most placer reads")
    try:
        return clean_text(data.decode("utf-8")), None
    except UnicodeDecodeError as exc:
        if not replace_undecodable:
            return None, Problem("", f"not a UTF-8 text file (byte {exc.start})")
        text = data.decode("utf-8", "replace")
        n = text.count("\ufffd") - data.count("\ufffd".encode())
        return clean_text(text), Problem("", f"{n:,} byte sequence(s) that are not UTF-8, the first at byte "
                                             f"{exc.start}, read as U+FFFD", severity="warning")


# -- YAML --------------------------------------------------------------------------------------------
class _TooBig(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


def _key_text(node: yaml.Node) -> str:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else f"<{type(node).__name__}>"


def _scalar_problem(node: yaml.ScalarNode, path: str) -> Problem | None:
    value = node.value.strip().lstrip("+-").replace("_", "")
    if node.tag == _INT_TAG and len(value) > MAX_INT_DIGITS:
        return Problem(path, f"a number of {len(value)} digits; at most {MAX_INT_DIGITS} are read",
                       line=node.start_mark.line + 1)
    if node.tag == _FLOAT_TAG and value.lower() in (".inf", ".nan"):
        return Problem(path, f"{node.value!r} is not a finite number", line=node.start_mark.line + 1)
    return None


class _Checker:
    """One walk over a composed YAML document: depth, duplicate keys, oversized numbers, and the size it
    would have once aliases are expanded (each shared node is sized once, so a bomb costs nothing here)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        self.sizes: dict[int, int] = {}
        self.open: set[int] = set()
        self.total = 0

    def size(self, node: yaml.Node, path: str, depth: int) -> int:
        key = id(node)
        if key in self.sizes:
            return self.add(self.sizes[key], path, node)
        if key in self.open:
            raise _TooBig(Problem(path, "an alias refers to the collection that contains it",
                                  line=node.start_mark.line + 1))
        if depth > MAX_DEPTH:
            raise _TooBig(Problem(path, f"nested more than {MAX_DEPTH} levels deep", line=node.start_mark.line + 1))
        self.open.add(key)
        n = 1 + self.children(node, path, depth)
        self.open.discard(key)
        self.sizes[key] = n
        return n

    def add(self, n: int, path: str, node: yaml.Node) -> int:
        self.total += n
        if self.total > MAX_VALUES:
            raise _TooBig(Problem(path, f"the document holds over {MAX_VALUES:,} values once its aliases are "
                                        f"expanded", line=node.start_mark.line + 1))
        return n

    def children(self, node: yaml.Node, path: str, depth: int) -> int:
        if isinstance(node, yaml.ScalarNode):
            if (p := _scalar_problem(node, path or "(top)")) is not None:
                self.problems.append(p)
            self.add(1, path, node)
            return 0
        if isinstance(node, yaml.SequenceNode):
            return sum(self.size(c, f"{path}[{i}]", depth + 1) for i, c in enumerate(node.value))
        n, seen = 0, dict[str, int]()
        for k, v in node.value:
            name = _key_text(k)
            if k.tag != _MERGE_TAG and isinstance(k, yaml.ScalarNode):
                if name in seen:
                    self.problems.append(Problem(f"{path}.{name}" if path else name,
                                                 f"duplicate key {name!r} (first at line {seen[name]})",
                                                 line=k.start_mark.line + 1))
                seen.setdefault(name, k.start_mark.line + 1)
            n += self.size(k, path, depth + 1) + self.size(v, f"{path}.{name}" if path else name, depth + 1)
        return n


def parse_yaml(text: str, problems: list[Problem]) -> Any:
    """One YAML document within the limits above, or None with the problems appended."""
    before = len(problems)
    try:
        loader = _Base(clean_text(text))
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _Checker(problems).size(node, "", 0)
            if len(problems) > before:
                return None
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except _TooBig as exc:
        problems.append(exc.problem)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        what = getattr(exc, "problem", None) or str(exc)
        problems.append(Problem("", f"not valid YAML: {what}", line=mark.line + 1 if mark is not None else None))
    except (RecursionError, ValueError) as exc:  # the pure-Python parser's recursion; a timestamp out of range
        problems.append(Problem("", f"not valid YAML: {type(exc).__name__}: {str(exc)[:200]}"))
    return None


# -- JSON --------------------------------------------------------------------------------------------
class _Dups(dict[str, Any]):
    """A JSON object in which a key came twice (found after the parse, with its path)."""
    dups: list[str]


def _pairs(found: list[bool]) -> Any:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(pairs)
        if len(out) == len(pairs):
            return out
        found[0] = True
        d = _Dups(out)
        seen: set[str] = set()
        d.dups = []
        for k, _ in pairs:
            if k in seen:
                d.dups.append(k)
            seen.add(k)
        return d
    return hook


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"a number of {len(text.lstrip('-'))} digits; at most {MAX_INT_DIGITS} are read")
    return int(text)


def _float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise ValueError(f"{text[:40]} is not a finite number")
    return v


def _constant(text: str) -> Any:
    raise ValueError(f"{text} is not a finite number")


def _dup_paths(doc: Any) -> list[str]:
    out: list[str] = []
    stack: list[tuple[Any, str]] = [(doc, "")]
    while stack:
        v, path = stack.pop()
        if isinstance(v, dict):
            if isinstance(v, _Dups):
                out.extend(f"{path}.{k}" if path else k for k in v.dups)
            stack.extend((x, f"{path}.{k}" if path else str(k)) for k, x in v.items())
        elif isinstance(v, list):
            stack.extend((x, f"{path}[{i}]") for i, x in enumerate(v))
    return sorted(out)


def parse_json(text: str | bytes, problems: list[Problem]) -> Any:
    """One JSON document within the limits above, or None with the problems appended."""
    found = [False]
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        doc = json.loads(clean_text(text), object_pairs_hook=_pairs(found), parse_int=_int, parse_float=_float,
                         parse_constant=_constant)
    except json.JSONDecodeError as exc:
        problems.append(Problem("", f"not valid JSON: {exc.msg}", line=exc.lineno))
        return None
    except UnicodeDecodeError as exc:
        problems.append(Problem("", f"not UTF-8 (byte {exc.start})"))
        return None
    except RecursionError:
        problems.append(Problem("", "not valid JSON: nested too deeply"))
        return None
    except ValueError as exc:  # from the hooks above
        problems.append(Problem("", f"not valid JSON: {exc}"))
        return None
    if found[0]:
        problems.extend(Problem(p, "duplicate key (a key may appear once in an object)") for p in _dup_paths(doc))
        return None
    return doc

