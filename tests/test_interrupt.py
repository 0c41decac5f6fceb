"""Interruption: Ctrl-C (SIGINT), SIGTERM and kill -9 in the middle of a run stop the grid at once,
record nothing for the interrupted run, keep the finished ones, and the next invocation resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.record.store import read_rows

ROOT = Path(__file__).resolve().parent.parent


def start(results: Path, seeds: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "bench", "--grid", "smoke", "--methods", "finetune", "--backbones",
               "random-bert-small", "--threads", "1", "--seeds", seeds, "--results", str(results)]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def read_until(proc: subprocess.Popen, text: str, timeout: float = 240) -> str:
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return "".join(seen)
    proc.kill()
    pytest.fail(f"'{text}' never appeared:\n{''.join(seen)[-3000:]}")


@pytest.mark.parametrize("how, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGKILL, -9)])
def test_an_interrupted_run_is_not_recorded_and_the_grid_resumes(tmp_path, how, code) -> None:
    results = tmp_path / "runs.csv"
    two_seeds = how == signal.SIGINT  # one case also shows that a finished run before it is kept
    proc = start(results, "0,1" if two_seeds else "0")
    if two_seeds:
        read_until(proc, "[2/2] random-bert-small finetune (lr=0.001) seed 1: running")
    read_until(proc, "epoch 1/3 done")  # mid-run: training has started, the run is not finished
    proc.send_signal(how)
    sent = time.monotonic()
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == code, rest
    assert time.monotonic() - sent < 20  # promptly: not after the run or the grid
    if how != signal.SIGKILL:
        assert "interrupted; not recorded" in rest and "run the same command again to resume" in rest
    assert [r["seed"] for r in read_rows(results)] == (["0"] if two_seeds else [])

    again = start(results, "0,1" if two_seeds else "0")
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out
    seeds = [r["seed"] for r in read_rows(results)]
    assert seeds == (["0", "1"] if two_seeds else ["0"])  # the interrupted run ran again, and only it
    assert all(r["status"] == "ok" for r in read_rows(results))
