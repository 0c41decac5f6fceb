"""What kind of file a path names, so that a FIFO, a device or a socket given where a regular file
belongs is refused by its type before anything opens it (opening a FIFO blocks until a writer comes;
``/dev/null`` takes rows and keeps none); and reading a user's TOML file (grids, tasks) the one way."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any

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


def read_toml(path: Path, what: str, accepted: str, error: type[Exception]) -> dict[str, Any]:
    """The parsed TOML file ``path`` (a ``what``, e.g. "grid file"); ``error`` with one line when it is a
    special file (``accepted`` says what is), cannot be read, or is not valid TOML. TOML is data: nothing
    in it runs."""
    kind = special_kind(path)
    if kind:
        raise error(f"{what} {path} is {kind}, not a file; accepted: {accepted}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{what} {path} is not valid TOML: {exc}") from None
