"""`python -m placer`: the `placer` command, for hosts where the console script is not on PATH.

The one place placer/ reaches up to cli/ (the composition root): only when run as a program, never on import.
"""
from cli.main import entry

entry()
