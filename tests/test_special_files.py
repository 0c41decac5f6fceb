"""A FIFO among the CSVs that `report` and `reproduce --against` read is refused by type: one line, a
non-zero exit, nothing changed, and no hang (the FIFO has no writer, so opening it would wait forever)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_report_on_a_folder_holding_a_fifo_is_refused_and_changes_nothing(tmp_path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    shutil.copy(ROOT / "results" / "runs.csv", results / "runs.csv")
    os.mkfifo(results / "more.csv")
    out = tmp_path / "reports"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    done = bench("report", "--results-dir", str(results), "--out", str(out))
    assert done.returncode != 0, done.stdout + done.stderr
    assert "is a FIFO (named pipe), not a regular file" in done.stderr
    assert "Traceback" not in done.stderr and sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_the_results_reader_refuses_a_fifo_by_type(tmp_path) -> None:
    import pytest

    from bench.record.schema import SchemaError
    from bench.record.store import finished_rows, read_rows

    fifo = tmp_path / "runs.csv"
    os.mkfifo(fifo)
    for reader in (read_rows, finished_rows):
        with pytest.raises(SchemaError, match="is a FIFO"):
            reader(fifo)
