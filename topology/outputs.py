"""Writing a file so that a failure never leaves it half-written: a temporary file beside it, then a
rename over it (atomic on one filesystem). The one home of that rule for every layer above."""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


def write_atomic(path: Path, text: str, mode: int, errors: str = "strict") -> None:
    """Write `text` to `path` with permission bits `mode`; on any failure the old file (if any) is left
    whole and the temporary file removed. OSError when the directory cannot be written. `errors`:
    "surrogateescape" writes back bytes read that way (a site's file that is not UTF-8).

    Through a symlink (a slurm.conf kept in a shared directory, linked from /etc/slurm) the file it points at
    is replaced and the link stays. What is not a regular file (`-o /dev/stdout`, a pipe) is written in place:
    a rename would put a regular file where the device was (seen as root: /dev/full replaced)."""
    try:
        regular = stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:  # (a link to nothing yet: made where it points)
        regular = True
    if not regular:
        with open(path, "w", encoding="utf-8", errors=errors) as out:
            out.write(text)
        return
    target = Path(os.path.realpath(path)) if os.path.islink(path) else path
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors=errors) as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
