"""Exit codes of `placer`, in one place (documented in the README)."""
from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    INTERNAL = 1  # a bug in placer: the traceback is printed, please report it
    BAD_INPUT = 2  # a broken inventory, config, dump or request; usage errors too (click's own code)
    BACKEND = 3  # Slurm or another outside system failed or is unreachable
