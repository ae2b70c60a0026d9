"""Inputs for the fuzz suite: real-looking texts (the examples and fixtures) broken in the ways files get
broken (cut, doubled, spliced, re-encoded) and salted with values that have crashed parsers before."""
from __future__ import annotations

from hypothesis import strategies as st

# values that found bugs (issue 16) or sit on a limit: huge and non-finite numbers, deep nesting, markers,
# hostlists that expand to millions, names YAML reads as other types
NASTY = [
    "nan", "NaN", "inf", "-inf", "Infinity", "1e999", ".inf", ".nan", "-1", "0", "4294967295",
    "18446744073709551614", "9" * 25, "9" * 5000, "1" + "0" * 4301, "-0", "1.5", "1_000",
    "null", "~", "true", "yes", "{a: 1}", "[]", "{}", "[" * 200, "{" * 200, "&a [1]", "*a", "<<: *a",
    "\ufeff", "\r\n", "\r", "\t", "\x00", "#", ";", "|", ",", ":", "=", " ", "\"", "'", "\\", "\u00e9", "\U0001f600",
    "n[0-999999]", "a[0-999]b[0-999]c[0-9]", "n[1-", "n[3-1]", "gpu[001-128]", "[1-2]",
    "gres/gpu=9999999999", "gpu:h100:8", "gpu:0", "Switches=-1", "S-0002c903000a0b0c", "H-0002c903000a0b0c",
    "lid 4294967295", "4xNDR", "64xNDR", "\"gpu0001 HCA-1\"", "[1](0002c903000a0b0c)",
    "\"   \"", "\"\"", "# \"\"", "MF0;", "MF0;a b:", "HCA-1",
]


@st.composite
def mutated(draw: st.DrawFn, seeds: list[str]) -> str:
    """One seed text with 0-4 edits; now and then a splice of two seeds or a plain random text."""
    if draw(st.integers(0, 19)) == 0:
        return draw(st.text(max_size=400))
    text = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(0, 4))):
        text = _edit(draw, text, seeds)
    return text


def _edit(draw: st.DrawFn, text: str, seeds: list[str]) -> str:
    n = len(text)
    i = draw(st.integers(0, n))
    j = draw(st.integers(i, min(n, i + 200)))
    kind = draw(st.integers(0, 7))
    if kind == 0:  # cut a span
        return text[:i] + text[j:]
    if kind == 1:  # a nasty value in place of a span
        return text[:i] + draw(st.sampled_from(NASTY)) + text[j:]
    if kind == 2:  # a span doubled (duplicate keys, lines, records)
        return text[:j] + text[i:j] + text[j:]
    if kind == 3:  # random characters
        return text[:i] + draw(st.text(max_size=20)) + text[j:]
    if kind == 4:  # a line doubled
        lines = text.split("\n")
        k = draw(st.integers(0, max(len(lines) - 1, 0)))
        return "\n".join(lines[:k + 1] + lines[k:])
    if kind == 5:  # spliced with another seed
        other = draw(st.sampled_from(seeds))
        m = draw(st.integers(0, len(other)))
        return text[:i] + other[m:]
    if kind == 6:  # Windows line ends or a byte-order mark
        return "\ufeff" + text if draw(st.booleans()) else text.replace("\n", "\r\n")
    # a number in the text replaced by a nasty one
    digits = [k for k, c in enumerate(text) if c.isdigit()]
    if not digits:
        return text
    k = draw(st.sampled_from(digits))
    e = k
    while e < n and text[e].isdigit():
        e += 1
    return text[:k] + draw(st.sampled_from(["9" * 30, "9" * 5000, "0", "-1", "nan", "inf", "99999999999"])) + text[e:]
