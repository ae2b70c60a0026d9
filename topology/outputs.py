"""Writing a file so that a failure never leaves it half-written: a temporary file beside it, then a
rename over it (atomic on one filesystem). The one home of that rule for every layer above."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, text: str, mode: int, errors: str = "strict") -> None:
    """Write `text` to `path` with permission bits `mode`; on any failure the old file (if any) is left
    whole and the temporary file removed. OSError when the directory cannot be written. `errors`:
    "surrogateescape" writes back bytes read that way (a site's file that is not UTF-8)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors=errors) as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
