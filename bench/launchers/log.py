"""The run log of one invocation: console lines also appended, time-stamped, to a file in
``<results folder>/logs/``, and where a row goes when the results file cannot take it."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.record.schema import SchemaError


class RunLog:
    """Console lines that are also appended, time-stamped, to a log file for the whole invocation.

    A log that stops taking lines (a full disk) never stops the grid: the console still gets every
    line, and the first failure is said once."""

    def __init__(self, folder: Path, name: str, echo: Callable[[str], None] = print):
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.path = folder / f"{stamp}-{name}-{os.getpid()}.log"
        self.echo = echo
        self.broken = ""  # why the log stopped taking lines
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self.handle = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise SchemaError(f"cannot write the run log {self.path}: {exc.strerror or exc}") from None

    def say(self, text: str) -> None:
        self.echo(text)
        self.write(text)

    def write(self, text: str) -> bool:
        """Append ``text``; False (said once on the console) when the log cannot take it."""
        if self.broken:
            return False
        try:
            self.handle.write(f"{dt.datetime.now().strftime('%H:%M:%S')} {text}\n")
            self.handle.flush()
            os.fsync(self.handle.fileno())
            return True
        except OSError as exc:
            self.broken = exc.strerror or str(exc)
            self.echo(f"warning: the run log {self.path} stopped taking lines ({self.broken}); the console "
                      "still shows them")
            return False

    def close(self) -> None:
        try:
            self.handle.close()
        except OSError:
            pass  # what it could not write was said when it failed


def keep_unrecorded(row: dict, label: str, log: RunLog) -> str:
    """Put a row the results file did not take somewhere that still has space: the run log, else a file
    in the temporary folder or the home folder; say where. Where none takes it, the row goes to the
    console (stderr) and the answer says so plainly."""
    line = json.dumps(row, default=str)
    if log.write(f"{label}: row NOT recorded: {line}"):
        return f"the unrecorded row is in {log.path}"
    for folder in (Path(tempfile.gettempdir()), Path.home()):
        path = folder / f"bench-unrecorded-{os.getpid()}.jsonl"
        try:
            with path.open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            return f"the unrecorded row is in {path}"
        except OSError:
            continue
    print(f"{label}: row NOT recorded: {line}", file=sys.stderr)
    return "no file could take the unrecorded row (disk full?): it is printed above, on the console"
