"""The Ray launcher on a local Ray cluster (and a simulated two-node one): the same rows as the serial
runner, bit for bit; a dying worker is a failed row and the grid completes; an interrupted driver
leaves only whole rows and the next invocation resumes to the full set."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from bench.config.grid_files import GRIDS  # noqa: E402
from bench.config.grids import narrow  # noqa: E402
from bench.launchers.ray_tasks import CRASH_HOOK, CRASH_ONCE, run_grid_ray  # noqa: E402
from bench.launchers.serial import run_grid  # noqa: E402
from bench.record.store import read_rows  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MEASURED = ("acc", "acc_last", "acc_select", "train_loss", "best_epoch", "status")


def quiet(_: str) -> None:
    pass


@pytest.fixture
def local_ray():
    """A fresh local Ray for one test (workers inherit the environment the test set before it)."""
    yield lambda **kw: ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", **kw)
    ray.shutdown()


def by_run(path: Path) -> dict[str, dict]:
    rows = read_rows(path)
    assert len(rows) == len({r["run_id"] for r in rows}), "a run was recorded twice"
    return {r["run_id"]: r for r in rows}


@pytest.fixture(scope="module")
def serial_rows(tmp_path_factory) -> dict[str, dict]:
    path = tmp_path_factory.mktemp("serial") / "runs.csv"
    run_grid(GRIDS["smoke"], path, threads=1, progress=False, say=quiet)
    return by_run(path)


def test_the_smoke_grid_through_ray_gives_the_serial_rows_bit_for_bit(local_ray, serial_rows, tmp_path) -> None:
    local_ray()
    path = tmp_path / "runs.csv"
    outcome = run_grid_ray(GRIDS["smoke"], path, threads=1, say=quiet, progress_every_s=5)
    rows = by_run(path)
    assert outcome.exit_code == 0 and set(rows) == set(serial_rows) and len(rows) == 6
    for rid, row in rows.items():
        assert {k: row[k] for k in MEASURED} == {k: serial_rows[rid][k] for k in MEASURED}
        assert row["launcher"] == "ray" and row["node"] and row["accelerator"] == ""
    again = run_grid_ray(GRIDS["smoke"], path, threads=1, say=quiet)  # everything recorded: nothing runs
    assert again.reused == 6 and not again.rows and len(read_rows(path)) == 6


def test_a_simulated_two_node_cluster_gives_the_same_rows(serial_rows, tmp_path) -> None:
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    try:
        ray.init(address=cluster.address, logging_level="ERROR")
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        path = tmp_path / "runs.csv"
        run_grid_ray(GRIDS["smoke"], path, threads=1, say=quiet)
        rows = by_run(path)
        assert set(rows) == set(serial_rows)
        for rid, row in rows.items():
            assert {k: row[k] for k in MEASURED} == {k: serial_rows[rid][k] for k in MEASURED}
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_a_dying_worker_is_a_failed_row_and_the_grid_completes(local_ray, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(CRASH_HOOK, "random-bert-tiny finetune 0")
    local_ray()
    grid = narrow(GRIDS["smoke"], backbones=["random-bert-tiny"])
    path = tmp_path / "runs.csv"
    outcome = run_grid_ray(grid, path, threads=1, say=quiet)
    rows = {r["method"]: r for r in read_rows(path)}
    assert set(rows) == {"finetune", "prompt", "prefix"} and outcome.exit_code == 1
    assert rows["finetune"]["status"] == "failed" and "worker running it died" in rows["finetune"]["error"]
    assert rows["prompt"]["status"] == rows["prefix"]["status"] == "ok"


def test_retries_run_a_task_again_after_its_worker_died(local_ray, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(CRASH_HOOK, "random-bert-tiny finetune 0")
    monkeypatch.setenv(CRASH_ONCE, str(tmp_path / "crashed-once"))
    local_ray()
    grid = replace(narrow(GRIDS["smoke"], backbones=["random-bert-tiny"], methods=["finetune"]))
    path = tmp_path / "runs.csv"
    run_grid_ray(grid, path, threads=1, say=quiet, retries=1)
    (row,) = read_rows(path)
    assert row["status"] == "ok" and (tmp_path / "crashed-once").exists()


def test_an_interrupted_driver_leaves_whole_rows_and_resumes(serial_rows, tmp_path) -> None:
    path = tmp_path / "runs.csv"
    command = [sys.executable, "-m", "bench", "--grid", "smoke", "--launcher", "ray", "--threads", "1",
               "--results", str(path), "--quiet"]
    driver = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and (not path.exists() or len(read_rows(path)) < 1):
        time.sleep(0.5)
    os.killpg(driver.pid, signal.SIGINT)
    output = driver.communicate(timeout=120)[0]
    assert driver.returncode == 130, output
    partial = by_run(path)
    assert 1 <= len(partial) <= 6 and all(row["status"] == "ok" for row in partial.values())
    assert "cancelled" in output or len(partial) == 6
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = by_run(path)
    assert set(rows) == set(serial_rows)


def test_the_serial_path_does_not_import_ray() -> None:
    code = ("import sys\nfrom bench.__main__ import main\n"
            "assert main(['--grid', 'smoke', '--methods', 'finetune', '--backbones', 'random-bert-tiny', "
            "'--threads', '1', '--quiet', '--results', sys.argv[1]]) == 0\n"
            "assert 'ray' not in sys.modules, 'the serial runner imported ray'")
    with __import__("tempfile").TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-c", code, str(Path(tmp) / "runs.csv")], cwd=ROOT, check=True,
                       capture_output=True)


@pytest.mark.parametrize("address, message", [("127.0.0.1:1", "nothing answers there"),
                                              ("nonsense", "is not HOST:PORT; accepted: auto")])
def test_a_bad_ray_address_is_one_line_before_any_work(address, message, tmp_path, capsys) -> None:
    from bench.__main__ import main

    results = tmp_path / "runs.csv"
    assert main(["--grid", "smoke", "--launcher", "ray", "--ray-address", address, "--results", str(results)]) == 2
    assert message in capsys.readouterr().err and not results.exists()
    assert not ray.is_initialized()
