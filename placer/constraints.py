"""sbatch --constraint as placer honours it, and what it leaves to Slurm.

Honoured: `a&b` (every node has both), `a|b` (every node has one of them), `x&(a|b)` (parentheses make
an OR one term of an AND), and matching OR `[a|b]` / `[a&x|b]` (all nodes of the job take the same
alternative), also joined with plain terms: `[a|b]&x`. An expression is kept as clauses: a node
satisfies it when it has at least one feature of every clause.

Left to Slurm (the job goes in unchanged): counts (`a*2`), `&` and `|` mixed without parentheses
(Slurm evaluates them left to right, which people rarely mean), nested brackets or parentheses, and
anything it cannot read.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

Clauses = tuple[frozenset[str], ...]  # every clause must meet the node's features


@dataclass(frozen=True)
class Constraint:
    alternatives: tuple[Clauses, ...]  # one for a plain expression; one per bracket alternative

    def allows(self, features: frozenset[str] | set[str], alternative: int | None = None) -> bool:
        """Whether a node with `features` may host the job (under one alternative, or any)."""
        alts = self.alternatives if alternative is None else (self.alternatives[alternative],)
        return any(all(c & features for c in alt) for alt in alts)

    def alternative_text(self, k: int) -> str:
        """Alternative k as sbatch -C writes it (`x&(a|b)`): what every node of a plan on it has."""
        return "&".join(next(iter(c)) if len(c) == 1 else f"({'|'.join(sorted(c))})" for c in self.alternatives[k])


_NAME = re.compile(r"^[A-Za-z0-9_.:\-]+$")


def _and_chain(text: str) -> Clauses:
    """`a&(b|c)&d` -> ({a}, {b, c}, {d}); ValueError when it is anything else."""
    clauses = []
    for term in _split_top(text, "&"):
        term = term.strip()
        if term.startswith("(") and term.endswith(")"):
            inner = term[1:-1]
            if any(c in inner for c in "()[]&"):
                raise ValueError("nested groups")
            names = [n.strip() for n in inner.split("|")]
        else:
            names = [term]
        if not all(_NAME.match(n) for n in names):
            raise ValueError(f"cannot read {term!r}")
        clauses.append(frozenset(names))
    return tuple(clauses)


def _split_top(text: str, sep: str) -> list[str]:
    """Split at `sep` outside parentheses and brackets."""
    out, depth, start = [], 0, 0
    for i, c in enumerate(text):
        depth += c in "(["
        depth -= c in ")]"
        if depth < 0:
            raise ValueError("unbalanced")
        if c == sep and depth == 0:
            out.append(text[start:i])
            start = i + 1
    if depth:
        raise ValueError("unbalanced")
    return out + [text[start:]]


def _plain(text: str) -> Clauses:
    """Outside brackets: only `&` (with parenthesised ORs), or only `|`."""
    parts = _split_top(text, "|")
    if len(parts) > 1 and "&" in text:
        raise ValueError("& and | mixed without parentheses")
    if len(parts) > 1:
        names = [p.strip() for p in parts]
        if not all(_NAME.match(n) for n in names):
            raise ValueError("an OR of plain features only")
        return (frozenset(names),)
    return _and_chain(text)


@lru_cache(maxsize=4096)
def parse_constraint(text: str) -> tuple[Constraint | None, str | None]:
    """(constraint, None), or (None, why placer leaves it to Slurm)."""
    text = text.strip()
    if not text:
        return Constraint(((),)), None
    if "*" in text:
        return None, "counts (`*N`)"
    try:
        terms = _split_top(text, "&")
        brackets = [t.strip() for t in terms if t.strip().startswith("[")]
        if len(brackets) > 1:
            raise ValueError("several matching-OR brackets")
        rest = "&".join(t for t in terms if not t.strip().startswith("["))
        common = _plain(rest) if rest.strip() else ()
        if not brackets:
            return Constraint((common,)), None
        b = brackets[0]
        if not b.endswith("]") or "[" in b[1:-1]:
            raise ValueError("nested brackets")
        alts = tuple(common + _and_chain(a) for a in _split_top(b[1:-1], "|"))
        return Constraint(alts), None
    except ValueError as exc:
        return None, str(exc)
