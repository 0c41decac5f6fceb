"""The Ray driver under SIGTERM (what Slurm sends at the end of a job), in the middle of a grid and
while Ray starts: exit 143 and our line, no C++ stack dump, only whole rows; a second driver on the same
results file says it left the runs another one holds to it (it did not wait for them); a ray:// address
without Ray Client is one line before any work."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from bench.__main__ import main  # noqa: E402
from bench.config.grid_files import GRIDS  # noqa: E402
from bench.launchers.driver import expand, prepare  # noqa: E402
from bench.launchers.ray_tasks import run_grid_ray  # noqa: E402
from bench.record.schema import run_id  # noqa: E402
from bench.record.store import RunClaim, read_rows  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RAY_DUMP = "SIGTERM received at time"  # the first line of the C++ failure-signal handler's stack dump


def driver(results: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "bench", "--grid", "smoke", "--launcher", "ray", "--threads", "1",
               "--results", str(results), "--quiet"]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def children(pid: int) -> list[int]:
    try:
        return [int(c) for task in Path(f"/proc/{pid}/task").iterdir()
                for c in (task / "children").read_text().split()]
    except OSError:
        return []


def wait_until(ready, proc: subprocess.Popen, what: str, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.1)
    if not ready():
        proc.kill()
        pytest.fail(f"{what} never happened: {proc.communicate()[0][-3000:]}")


def ended_by_sigterm(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 143, output
    assert "interrupted by SIGTERM" in output and RAY_DUMP not in output and "Traceback" not in output, output
    return output


def test_sigterm_to_the_ray_driver_mid_grid_is_143_with_whole_rows(tmp_path) -> None:
    path = tmp_path / "runs.csv"
    proc = driver(path)
    wait_until(lambda: path.exists() and len(read_rows(path)) >= 1, proc, "a first row")
    ended_by_sigterm(proc)
    rows = read_rows(path)
    assert 1 <= len(rows) <= 6 and len({r["run_id"] for r in rows}) == len(rows)
    assert all(r["status"] == "ok" for r in rows)  # no run the signal stopped is a row


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc to see Ray start")
def test_sigterm_while_ray_starts_is_143_without_a_crash(tmp_path) -> None:
    path = tmp_path / "runs.csv"
    proc = driver(path)
    wait_until(lambda: bool(children(proc.pid)), proc, "Ray starting its processes")  # inside ray.init
    ended_by_sigterm(proc)
    assert not read_rows(path)


@pytest.fixture
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()


def test_a_second_driver_says_it_left_the_runs_another_holds(local_ray, tmp_path) -> None:
    path = tmp_path / "runs.csv"
    grid = GRIDS["smoke"]
    task_data, _ = prepare(grid, path, None)
    claims = [RunClaim(path, run_id(spec.identity())) for spec in expand(grid, task_data, "cpu", 1, True, False,
                                                                        lambda _: None)]
    assert all(claim.acquire() for claim in claims)  # the first driver, running them all
    said: list[str] = []
    try:
        outcome = run_grid_ray(grid, path, threads=1, say=said.append)
    finally:
        for claim in claims:
            claim.release()
    assert outcome.exit_code == 0 and not outcome.rows and not read_rows(path)
    summary = said[-1]
    assert "6 being run by another process, left to it" in summary and "waited for" not in summary.replace(
        "not waited for", "")


def test_a_ray_client_address_without_ray_client_is_one_line_before_any_work(monkeypatch, tmp_path,
                                                                             capsys) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "grpc" else real(name, *a))
    results = tmp_path / "runs.csv"
    argv = ["--grid", "smoke", "--launcher", "ray", "--ray-address", "ray://127.0.0.1:10001", "--results",
            str(results)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ray[client]" in err and ".[ray]" in err
    assert not results.exists() and not ray.is_initialized()
