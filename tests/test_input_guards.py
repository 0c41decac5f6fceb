"""Issue 21's input guards: a grid's size is known before it is expanded, bad `run-one` specs, special
files, folders given as a grid, and Ctrl-C at start-up are each one line and an exit code, before any work;
and the expansion of every built-in grid keeps its run_ids."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.__main__ import main
from bench.launchers.driver import expand
from bench.record.schema import run_id
from bench.record.store import read_rows

ROOT = Path(__file__).resolve().parent.parent
PINNED = json.loads((Path(__file__).parent / "fixtures" / "grid_run_ids.json").read_text())
SPEC = {"grid": "smoke", "task": "synthetic", "backbone": "random-bert-tiny", "method": "finetune", "seed": 0,
        "budget": "smoke", "overrides": {"lr": 1e-3}, "threads": 1}
HUGE = ('backbones = ["random-bert-tiny"]\nseeds = [0]\ntask = "synthetic"\nbudget = "smoke"\n[methods.lora]\n'
        + "".join(f"{key} = [{', '.join(str(start + i * step) for i in range(10))}]\n"
                  for key, start, step in (("lr", 1e-4, 1e-4), ("epochs", 1, 1), ("weight_decay", 0.0, 0.01),
                                           ("warmup_ratio", 0.0, 0.01), ("batch_size", 8, 1), ("r", 1, 1),
                                           ("alpha", 1.0, 1.0), ("dropout", 0.0, 0.01))))


def grid_of(argv: list[str]):
    """The grid the command line ``argv`` names, as ``python -m bench`` builds it (nothing runs)."""
    from bench.__main__ import _grid_of, _parser

    return _grid_of(_parser().parse_args(["run", *argv]))


@contextlib.contextmanager
def hang_guard(seconds: int):
    """Fail instead of hanging (a blocked open of a FIFO is interrupted by the alarm)."""
    def hung(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: it hangs")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


# --- run_ids ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", sorted(PINNED))
def test_every_built_in_grid_expands_to_its_pinned_run_ids(key) -> None:
    """The fixture was computed by the code before issue 21 changed the expansion (sweeps expanded before
    --methods narrowed them): the same runs, in the same order, with the same ids."""
    name, task = key.split("/")
    specs = expand(grid_of(["--grid", name, "--task", task]), SimpleNamespace(name=task), "cpu", 2, True, False,
                   say=lambda _: None)
    assert [s.run_id for s in specs] == [run_id(s.identity()) for s in specs] == PINNED[key]


# --- a grid's size ----------------------------------------------------------------------------------------
def test_a_sweep_of_a_hundred_million_runs_is_refused_at_once(tmp_path, capsys) -> None:
    grid = tmp_path / "huge.toml"
    grid.write_text(HUGE)
    results = tmp_path / "runs.csv"
    tracemalloc.start()
    start = time.monotonic()
    with hang_guard(60):
        code = main(["--grid", str(grid), "--results", str(results)])
    elapsed = time.monotonic() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    line = one_error_line(capsys.readouterr().err)
    assert code == 2
    assert "100,000,000 runs" in line and "over the limit of 10,000" in line
    assert "--backbones, --methods or --seeds, or sweep fewer values" in line and "--max-runs 100000000" in line
    assert "lora sweeps 10 lr x 10 epochs" in line
    assert peak < 50e6, f"{peak / 1e6:.0f} MB allocated: the sweep was expanded"
    assert elapsed < 5, "a hang guard, not a speed target"
    assert not results.exists()


def test_the_limit_counts_after_narrowing_and_max_runs_raises_it(tmp_path, capsys) -> None:
    from bench.config.grid_files import check_size, grid_size, load_grid_file
    from bench.config.grids import GridError

    grid = tmp_path / "sweep.toml"
    grid.write_text('backbones = ["random-bert-tiny", "random-mpnet-tiny"]\nseeds = [0, 1, 2]\n'
                    '[methods.finetune]\nlr = [1e-4, 2e-4, 3e-4, 4e-4]\n[methods.prompt]\n')
    assert grid_size(load_grid_file(grid)) == 2 * 3 * (4 + 1)
    with pytest.raises(GridError, match="names 30 runs .* over the limit of 29"):
        check_size(load_grid_file(grid), 29)
    assert check_size(load_grid_file(grid), 30) == 30
    assert main(["--grid", str(grid), "--max-runs", "10", "--results", str(tmp_path / "r.csv")]) == 2
    assert "raise the limit with --max-runs 30" in capsys.readouterr().err
    assert len(grid_of(["--grid", str(grid), "--max-runs", "10", "--methods", "prompt"]).variants) == 1
    assert len(grid_of(["--grid", str(grid), "--max-runs", "30"]).variants) == 5


def test_a_big_allowed_grid_says_its_size_before_its_runs_are_checked(tmp_path, capsys) -> None:
    grid = tmp_path / "big.toml"
    values = ", ".join(f"{(i + 1) * 1e-5:.5f}" for i in range(200))
    grid.write_text('backbones = ["random-bert-tiny", "random-mpnet-tiny"]\nseeds = [0, 1, 2]\ntask = "synthetic"\n'
                    f'budget = "smoke"\n[methods.finetune]\nlr = [{values}]\n')
    code = main(["--grid", str(grid), "--set", "finetune.epochs=0", "--results", str(tmp_path / "r.csv")])
    out, err = capsys.readouterr()
    assert code == 2
    assert "grid big: 1,200 runs (the limit is 10,000)" in out
    assert "finetune.epochs=0: must be an integer >= 1" in one_error_line(err)


# --- --methods then --set ---------------------------------------------------------------------------------
def test_set_applies_to_a_method_that_methods_adds(capsys) -> None:
    grid = grid_of(["--grid", "smoke", "--methods", "lora", "--set", "lora.r=4"])
    assert [(v.method, dict(v.overrides)) for v in grid.variants] == [("lora", {"r": 4})]
    grid = grid_of(["--grid", "smoke", "--methods", "finetune", "--set", "prefix.lr=0.1"])
    assert [v.method for v in grid.variants] == ["finetune"]
    assert "note: --set prefix.lr=0.1 changes nothing: --methods leaves out prefix" in capsys.readouterr().out
    assert main(["--grid", "smoke", "--set", "lora.r=4"]) == 2  # a method neither the grid nor --methods has
    assert "grid smoke has no method 'lora'" in one_error_line(capsys.readouterr().err)


# --- folders and special files ----------------------------------------------------------------------------
def test_a_folder_given_as_grid_is_one_line_saying_what_is_accepted(tmp_path, capsys) -> None:
    assert main(["--grid", str(tmp_path), "--results", str(tmp_path / "r.csv")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"--grid {tmp_path} is a folder" in line and "a .toml grid file, or one of: bert-sizes" in line


@pytest.fixture
def specials():
    """A FIFO, a socket (short path: AF_UNIX names are short) and a character device."""
    folder = Path(tempfile.mkdtemp(prefix="h21-"))
    os.mkfifo(folder / "fifo.csv")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "sock.csv"))
    yield {"FIFO (named pipe)": folder / "fifo.csv", "socket": folder / "sock.csv",
           "character device": Path(os.devnull)}
    sock.close()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("kind", ["FIFO (named pipe)", "socket", "character device"])
def test_results_on_a_special_file_is_refused_by_type(specials, kind, capsys) -> None:
    with hang_guard(60):
        assert main(["--grid", "smoke", "--results", str(specials[kind])]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"is a {kind}, not a file; nothing was run" in line


@pytest.mark.parametrize("kind", ["FIFO (named pipe)", "character device"])
def test_a_grid_or_run_one_spec_on_a_special_file_is_refused_by_type(specials, kind, capsys, tmp_path) -> None:
    link = tmp_path / "grid.toml"
    link.symlink_to(specials[kind])
    with hang_guard(60):
        assert main(["--grid", str(link), "--results", str(tmp_path / "r.csv")]) == 2
        assert f"is a {kind}, not a file" in one_error_line(capsys.readouterr().err)
        assert main(["--grid", str(specials[kind]), "--results", str(tmp_path / "r.csv")]) == 2
        assert f"is a {kind}, not a file" in one_error_line(capsys.readouterr().err)
        assert main(["run-one", str(specials[kind])]) == 2
        assert f"is a {kind}" in one_error_line(capsys.readouterr().err)


def _make_unwritable(path: Path) -> Callable[[], None] | None:
    """Make ``path`` unwritable even for root (immutable), or read-only for others; the undo, or None."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        return lambda: path.chmod(0o644)
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        return None
    return lambda: subprocess.run(["chattr", "-i", str(path)], check=True)


def test_an_unwritable_results_file_is_found_before_training(tmp_path, capsys) -> None:
    results = tmp_path / "runs.csv"
    results.write_text("")
    undo = _make_unwritable(results)
    if undo is None:
        pytest.skip("cannot make a file unwritable here (root without chattr)")
    try:
        code = main(["--grid", "smoke", "--methods", "finetune", "--backbones", "random-bert-tiny", "--threads", "1",
                     "--quiet", "--results", str(results)])
    finally:
        undo()
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and f"cannot write to the results file {results}" in line and "nothing was run" in line
    assert not (tmp_path / "logs").exists()  # refused before the grid's log, let alone a run, started
    assert results.read_text() == ""


# --- seeds and run-one specs ------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["--grid", "smoke", "--seeds", "4294967296"],
                                  ["--grid", "smoke", "--seeds", "0,-1"]])
def test_seeds_beyond_numpys_range_are_refused_before_any_run(argv, tmp_path, capsys) -> None:
    assert main([*argv, "--results", str(tmp_path / "r.csv")]) == 2
    assert "seeds must be integers >= 0 and below 2**32" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "r.csv").exists()


def test_a_grid_files_seeds_beyond_numpys_range_are_refused(tmp_path, capsys) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text('backbones = ["random-bert-tiny"]\nseeds = [0, 4294967296]\n[methods.finetune]\n')
    assert main(["--grid", str(grid), "--results", str(tmp_path / "r.csv")]) == 2
    assert "seeds: must be a non-empty list of integers >= 0 and below 2**32" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("key, value, message", [
    ("seed", "zero", "seed='zero' must be an integer >= 0 and below 2**32"),
    ("seed", [0], "seed=[0] must be an integer"),
    ("seed", 2**32, "seed=4294967296 must be an integer >= 0 and below 2**32"),
    ("seed", True, "seed=True must be an integer"),
    ("threads", "two", "threads='two' must be an integer >= 1"),
    ("threads", -1, "threads=-1 must be an integer >= 1"),
    ("backbone", ["random-bert-tiny"], "backbone=['random-bert-tiny'] must be a non-empty string"),
    ("overrides", [1], "overrides=[1] must be a JSON object of settings"),
    ("bucketing", "yes", "bucketing='yes' must be true or false"),
    ("checkpoint_every_s", "soon", "checkpoint_every_s='soon' must be a number of seconds >= 0"),
])
def test_run_one_refuses_bad_values_in_one_line_before_training(key, value, message, tmp_path, capsys) -> None:
    results = tmp_path / "r.csv"
    assert main(["run-one", json.dumps({**SPEC, key: value}), "--results", str(results)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert message in line and "nothing was run" in line
    assert not results.exists()


def test_run_one_twice_reuses_the_recorded_row(tmp_path, capsys) -> None:
    results = tmp_path / "r.csv"
    assert main(["run-one", json.dumps(SPEC), "--results", str(results)]) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert main(["run-one", json.dumps(SPEC), "--results", str(results)]) == 0
    out, err = capsys.readouterr()
    again = json.loads(out.splitlines()[-1])
    assert f"run {first['run_id']} is already recorded in {results}" in err and "nothing appended" in err
    assert again["run_id"] == first["run_id"] and again["created_at"] == first["created_at"]
    assert [r["run_id"] for r in read_rows(results)] == [first["run_id"]]


# --- Ctrl-C at start-up -----------------------------------------------------------------------------------
@pytest.mark.parametrize("how, code, name", [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")])
def test_a_signal_in_the_first_second_is_one_line_and_its_exit_code(tmp_path, how, code, name) -> None:
    for delay in (0.25, 0.5, 0.75, 1.0) if how == signal.SIGINT else (0.25, 0.75):  # after the interpreter's start
        proc = subprocess.Popen([sys.executable, "-m", "bench", "--grid", "smoke", "--results",
                                 str(tmp_path / "r.csv")], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"},
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # not ignored
        time.sleep(delay)
        proc.send_signal(how)
        _, err = proc.communicate(timeout=120)
        lines = [line for line in err.splitlines() if line.strip()]
        assert proc.returncode == code, (delay, err)
        assert len(lines) == 1 and lines[0].startswith(f"interrupted by {name}"), (delay, err)
    assert not read_rows(tmp_path / "r.csv")
