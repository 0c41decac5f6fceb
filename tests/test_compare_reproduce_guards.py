"""`reproduce` compares a cell on the seeds both sides have and leaves out unclean speeds; `reproduce
--against` a missing folder and `compare` on an empty or special file are one line and a non-zero exit,
without hanging."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import main
from bench.record.schema import COLUMNS, run_id
from bench.record.store import format_row
from bench.report.reproduce import comparison

ROOT = Path(__file__).resolve().parent.parent


def row(seed: int, acc: float, speed: float = 100.0, clean: str = "true", method: str = "finetune") -> dict[str, str]:
    """A finished row of one cell of the smoke grid, as ``finished_rows`` gives it."""
    identity = {"grid": "smoke", "task": "synthetic", "budget": "smoke", "hparams": "{}", "device": "cpu",
                "backbone": "random-bert-tiny", "method": method}
    out = {c: "" for c in COLUMNS}
    out.update(identity, seed=str(seed), acc=repr(acc), train_samples_per_s=repr(speed), speed_clean=clean,
               cpu="AMD EPYC", status="ok", run_id=run_id({**identity, "seed": seed}))
    return out


def by_id(*rows: dict[str, str]) -> dict[str, dict[str, str]]:
    return {r["run_id"]: r for r in rows}


def line_of(table: str) -> str:
    return next(line for line in table.splitlines() if line.startswith("| random-bert-tiny"))


def test_a_cell_is_compared_on_the_seeds_both_sides_have() -> None:
    here = by_id(row(0, 0.76), row(1, 0.755), row(2, 0.765), row(3, 0.90))
    committed = {rid: r for rid, r in here.items() if r["seed"] != "3"}  # one committed row missing
    table, verdicts = comparison(committed, here)
    assert verdicts == ["identical"]
    line = line_of(table)
    assert "0,1,2 (seed 3 only here)" in line and "(3)" in line and "(4)" not in line


def test_a_seed_only_committed_is_named_and_left_out() -> None:
    committed = by_id(row(0, 0.76), row(1, 0.755), row(2, 0.60))
    here = by_id(row(0, 0.76), row(1, 0.755))
    table, verdicts = comparison(committed, here)
    assert verdicts == ["identical"] and "0,1 (seed 2 only committed)" in line_of(table)


@pytest.mark.parametrize("clean", ["false", ""])
def test_speed_ratios_of_runs_not_measured_on_a_quiet_machine_are_left_out(clean) -> None:
    committed = by_id(row(0, 0.76, speed=100.0), row(1, 0.75, speed=100.0, clean=clean))
    here = by_id(row(0, 0.76, speed=50.0), row(1, 0.75, speed=400.0))
    line = line_of(comparison(committed, here)[0])
    assert "| 0.50 " in line and "speed of 1 seed(s) not measured on a quiet machine" in line
    committed = by_id(row(0, 0.76, clean=clean))
    line = line_of(comparison(committed, by_id(row(0, 0.76, speed=999.0)))[0])
    assert "| – " in line and "left out of the ratio" in line


def test_reproduce_against_a_missing_folder_is_one_line_before_any_run(tmp_path, capsys) -> None:
    here = tmp_path / "here" / "runs.csv"
    argv = ["reproduce", "--grid", "smoke", "--methods", "finetune", "--backbones", "random-bert-tiny",
            "--threads", "1", "--quiet", "--results", str(here), "--against", str(tmp_path / "nowhere")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--against" in err and "does not exist" in err
    assert not here.exists()


def compare(*sources: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", "compare", *sources], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_compare_refuses_a_fifo_by_type_without_hanging(tmp_path) -> None:
    fifo = tmp_path / "runs.csv"
    os.mkfifo(fifo)
    done = compare(str(fifo), str(ROOT / "results" / "runs.csv"))  # a hang is a TimeoutExpired
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "not a regular file" in done.stderr and str(fifo) in done.stderr
    assert compare("/dev/null", str(ROOT / "results" / "runs.csv")).returncode == 2


def test_compare_with_an_empty_file_is_one_line_and_a_non_zero_exit(tmp_path, capsys) -> None:
    empty, good = tmp_path / "empty.csv", tmp_path / "good.csv"
    empty.touch()
    good.write_text(",".join(COLUMNS) + "\n" + ",".join(format_row(row(0, 0.7)).values()) + "\n")
    for argv in (["compare", str(empty), str(good)], ["compare", str(good), str(empty)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "empty.csv" in err and "no rows to compare" in err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_reproduce_against_a_fifo_or_a_folder_without_csvs_is_refused(tmp_path) -> None:
    from bench.config.grids import GridError
    from bench.report.reproduce import committed_csvs

    with pytest.raises(GridError, match="holds no .csv file"):
        committed_csvs(tmp_path)
    os.mkfifo(tmp_path / "runs.csv")
    with pytest.raises(GridError, match="not a regular file"):
        committed_csvs(tmp_path)  # refused by type: reading it would block
