"""A full disk: the results file and the run log (on the same disk) stop taking writes. The grid stops
with one line, and the row it could not record is kept where there is still space, or printed on the
console with a plain word that no file took it; the console gets every line the log could not."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from bench.launchers import driver
from bench.launchers import log as run_log
from bench.launchers.driver import GridAborted, GridOutcome, record_row
from bench.launchers.log import RunLog
from bench.record.schema import SchemaError

ROW = {"run_id": "abc", "status": "ok", "acc": 0.5}


class FullDisk:
    """A file handle whose writes fail as on a full disk."""

    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    def fileno(self) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def close(self) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")


def full_disk(monkeypatch, tmp_path: Path, echo: list[str]) -> RunLog:
    def no_space(*args, **kwargs):
        raise SchemaError("cannot append to results file runs.csv: No space left on device")

    monkeypatch.setattr(driver, "append_row", no_space)
    log = RunLog(tmp_path / "logs", "g", echo=echo.append)
    log.handle = FullDisk()
    return log


def test_the_row_goes_where_there_is_space_and_the_console_keeps_every_line(tmp_path, monkeypatch) -> None:
    echo: list[str] = []
    log = full_disk(monkeypatch, tmp_path, echo)
    elsewhere = tmp_path / "other-disk"
    elsewhere.mkdir()
    monkeypatch.setattr(run_log.tempfile, "gettempdir", lambda: str(elsewhere))
    log.say("epoch 1 done")
    log.say("epoch 2 done")  # the log's failure is said once, the lines still reach the console
    with pytest.raises(GridAborted) as stopped:
        record_row(tmp_path / "runs.csv", dict(ROW), "[1/1] x", log, GridOutcome("g", tmp_path / "runs.csv"))
    (kept,) = elsewhere.glob("bench-unrecorded-*.jsonl")
    assert json.loads(kept.read_text()) == ROW
    assert "No space left on device" in str(stopped.value) and str(kept) in str(stopped.value)
    assert "\n" not in str(stopped.value)
    assert echo[0] == "epoch 1 done" and sum("stopped taking lines" in line for line in echo) == 1
    assert "epoch 2 done" in echo
    log.close()  # closing a log on a full disk raises nothing


def test_when_no_file_takes_the_row_it_is_printed_and_the_message_says_so(tmp_path, monkeypatch, capsys) -> None:
    log = full_disk(monkeypatch, tmp_path, [])
    monkeypatch.setattr(run_log.tempfile, "gettempdir", lambda: str(tmp_path / "missing"))
    monkeypatch.setattr(run_log.Path, "home", lambda: tmp_path / "missing-too")
    with pytest.raises(GridAborted) as stopped:
        record_row(tmp_path / "runs.csv", dict(ROW), "[1/1] x", log, GridOutcome("g", tmp_path / "runs.csv"))
    assert "no file could take the unrecorded row" in str(stopped.value)
    assert json.dumps(ROW) in capsys.readouterr().err
