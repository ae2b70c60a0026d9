"""The `placer` command: composition root (click, files, exit codes, logging)."""
