#!/usr/bin/env python3
"""Fail on functions longer than MAX_LINES lines that do not say why on their `def` line.

ruff checks complexity (C901, at most 15); this checks length, which ruff does not. A function that
must stay long carries `# long: <reason>` on its `def` line (the reason is the point: say it).

    python scripts/check_function_size.py [PATH ...]   (default: topology placer plugins cli)
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

MAX_LINES = 80
DEFAULT = ("topology", "placer", "plugins", "cli")


def long_functions(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    out = []
    for node in ast.walk(ast.parse(text, str(path))):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        start = min([node.lineno] + [d.lineno for d in node.decorator_list])
        length = (node.end_lineno or node.lineno) - start + 1
        if length > MAX_LINES and "# long:" not in lines[node.lineno - 1]:
            out.append(f"{path}:{node.lineno}: {node.name} is {length} lines (at most {MAX_LINES}, "
                       f"or say why with '# long: <reason>' on its def line)")
    return out


def main(argv: list[str]) -> int:
    roots = [Path(a) for a in argv] or [Path(d) for d in DEFAULT]
    found = [msg for root in roots for f in sorted(root.rglob("*.py") if root.is_dir() else [root])
             for msg in long_functions(f)]
    print("\n".join(found) if found else f"function size: none over {MAX_LINES} lines")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
