"""What kind of file a path names, so that a FIFO, a device or a socket given where a regular file
belongs is refused by its type before anything opens it (opening a FIFO blocks until a writer comes;
``/dev/null`` takes rows and keeps none)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

_SPECIAL = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
            (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def special_kind(path: Path | str) -> str:
    """"a FIFO (named pipe)", "a character device", "a block device" or "a socket" when ``path`` (followed
    through symbolic links) is one; "" for a regular file, a folder, or nothing at all."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):  # absent, a dangling link, unreadable, or a name with a NUL byte
        return ""
    return next((kind for test, kind in _SPECIAL if test(mode)), "")
