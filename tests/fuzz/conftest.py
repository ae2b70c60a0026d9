"""The fuzz suite's budget: a fixed, reproducible one in the default test run (CI), a long random one on
demand (`scripts/fuzz.sh MINUTES`). Every target counts the inputs it tried; the total is printed."""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

_CHECKS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
           HealthCheck.function_scoped_fixture]
# ci: the same inputs on every run (derandomized), a few minutes on CI's 2 cores for the whole suite
settings.register_profile("ci", max_examples=int(os.environ.get("PLACER_FUZZ_EXAMPLES", "1000")), deadline=None,
                          derandomize=True, suppress_health_check=_CHECKS, print_blob=True)
# long: new random inputs every run; scripts/fuzz.sh repeats it until its time is up
settings.register_profile("long", max_examples=int(os.environ.get("PLACER_FUZZ_EXAMPLES", "2000")), deadline=None,
                          suppress_health_check=_CHECKS, print_blob=True, database=None)
settings.load_profile(os.environ.get("PLACER_FUZZ_PROFILE", "ci"))

TRIED: dict[str, int] = {}


def tried(target: str) -> None:
    TRIED[target] = TRIED.get(target, 0) + 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TRIED:
        terminalreporter.write_line(f"fuzz: {sum(TRIED.values()):,} inputs tried over {len(TRIED)} targets")
        out = os.environ.get("PLACER_FUZZ_COUNT_FILE")
        if out:
            with open(out, "a", encoding="utf-8") as fh:
                fh.write(f"{sum(TRIED.values())}\n")
