"""Epoch checkpoints: a run stopped between epochs resumes from its checkpoint and ends exactly where an
uninterrupted run ends; a checkpoint that is not this run's or this code's is never resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from bench.config.grid_files import GRIDS
from bench.config.grids import narrow
from bench.execute import checkpoint
from bench.execute.checkpoint import SaveAfterEpochs, Segments, checkpoint_path, code_fingerprint
from bench.execute.loop import run_one
from bench.launchers.driver import expand
from bench.record.schema import run_id
from bench.record.store import read_rows
from bench.tasks import load_task

ROOT = Path(__file__).resolve().parent.parent
SAME = ("acc", "acc_last", "acc_select", "best_epoch", "train_loss", "pred_majority_share", "trainable_params")


def smoke_spec(method: str, folder: Path | None):
    grid = narrow(GRIDS["smoke"], methods=[method], backbones=["random-mpnet-tiny"], seeds=[3])
    (spec,) = expand(grid, load_task("synthetic"), "cpu", 1, progress=False, say=lambda _: None)
    return replace(spec, checkpoint_dir=None if folder is None else str(folder), checkpoint_every_s=0.0)


def stop_after_saving(monkeypatch, epoch: int) -> None:
    """Make training raise KeyboardInterrupt right after the checkpoint that holds ``epoch`` is saved."""
    real = SaveAfterEpochs.on_train_epoch_begin

    def save_then_stop(self, trainer) -> None:
        real(self, trainer)
        if self.saved_after == epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(SaveAfterEpochs, "on_train_epoch_begin", save_then_stop)


@pytest.mark.parametrize("method", ["finetune", "prefix"])
def test_a_resumed_run_ends_exactly_where_an_uninterrupted_run_ends(tmp_path, monkeypatch, method) -> None:
    straight = run_one(smoke_spec(method, None), say=lambda _: None)
    spec = smoke_spec(method, tmp_path)
    with monkeypatch.context() as patch:
        stop_after_saving(patch, epoch=2)
        with pytest.raises(KeyboardInterrupt):
            run_one(spec, say=lambda _: None)
    saved = checkpoint.read_payload(checkpoint_path(tmp_path, run_id(spec.identity())))
    assert saved["epochs_done"] == 2 and len(saved["segments"]) == 1
    lines: list[str] = []
    monkeypatch.setattr("bench.execute.loop.speed_is_clean", lambda *args: True)  # quiet, whatever ran beside
    resumed = run_one(spec, say=lines.append)
    expected = f"resuming from the checkpoint after epoch 2/{straight['epochs']} (training segment 2)"
    assert any(expected in line for line in lines), lines
    assert {k: resumed[k] for k in SAME} == {k: straight[k] for k in SAME}
    assert straight["segments"] == 1 and resumed["segments"] == 2
    assert resumed["train_s"] > saved["segments"][0]["train_s"]  # the first segment's time counts too
    assert resumed["speed_clean"] is True  # both segments on one kind of machine: judged by load alone


def test_a_run_resumed_on_another_kind_of_machine_has_no_clean_speed(tmp_path, monkeypatch) -> None:
    spec = smoke_spec("prompt", tmp_path)
    with monkeypatch.context() as patch:
        stop_after_saving(patch, epoch=1)
        with pytest.raises(KeyboardInterrupt):
            run_one(spec, say=lambda _: None)
    path = checkpoint_path(tmp_path, run_id(spec.identity()))
    saved = checkpoint.read_payload(path)
    saved["segments"][0]["machine"] = "Some Other CPU (avx2), 1 threads, cpu"
    torch.save(saved, path)
    monkeypatch.setattr("bench.execute.loop.speed_is_clean", lambda *args: True)  # however quiet the machine was
    row = run_one(spec, say=lambda _: None)
    assert row["segments"] == 2 and row["speed_clean"] is False


def test_short_runs_save_no_checkpoint_and_a_recorded_run_leaves_none(tmp_path) -> None:
    from bench.launchers.serial import run_grid

    grid = narrow(GRIDS["smoke"], methods=["prompt"], backbones=["random-bert-tiny"], seeds=[0])
    results = tmp_path / "runs.csv"
    run_grid(grid, results, threads=1, progress=False, say=lambda _: None)  # default: at most one per 10 minutes
    assert not list((tmp_path / "checkpoints").glob("*"))
    run_grid(grid, results, threads=1, progress=False, say=lambda _: None, checkpoint_every_s=0.0, rerun=True)
    assert not list((tmp_path / "checkpoints").glob("*.pt"))  # saved every epoch, removed once recorded
    assert [r["segments"] for r in read_rows(results)] == ["1", "1"]


def test_a_checkpoint_of_other_code_or_another_run_or_unreadable_is_set_aside(tmp_path) -> None:
    path = tmp_path / "abc.pt"
    said: list[str] = []
    checkpoint.save(path, {"run_id": "abc", "code": "0123456789abcdef", "git_sha": "feedbeef"})
    assert checkpoint.load(path, "abc", code_fingerprint(), said.append) is None
    assert "written by other training code" in said[-1] and "feedbeef" in said[-1]
    assert not path.exists() and (tmp_path / "abc.pt.unused-1").exists()  # kept aside, never deleted

    checkpoint.save(path, {"run_id": "xyz", "code": code_fingerprint()})
    assert checkpoint.load(path, "abc", code_fingerprint(), said.append) is None
    assert "belongs to run xyz" in said[-1] and (tmp_path / "abc.pt.unused-2").exists()

    path.write_bytes(b"half a checkpoint")
    assert checkpoint.load(path, "abc", code_fingerprint(), said.append) is None
    assert "cannot be read" in said[-1] and (tmp_path / "abc.pt.unused-3").exists()

    checkpoint.save(path, {"run_id": "abc", "code": code_fingerprint()})
    assert checkpoint.load(path, "abc", code_fingerprint(), said.append) is None
    assert "not a whole checkpoint" in said[-1] and (tmp_path / "abc.pt.unused-4").exists()

    checkpoint.save(path, snapshot("abc", code_fingerprint()))
    assert checkpoint.load(path, "abc", code_fingerprint(), said.append).run_id == "abc"
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic save leaves no temporary file


def snapshot(rid: str, code: str) -> checkpoint.Snapshot:
    return checkpoint.Snapshot(run_id=rid, code=code, git_sha="feedbeef", epochs_done=1,
                               model={"w": torch.ones(2)}, optimizer={}, scheduler={}, sampler_epoch=1,
                               keeper={}, losses={}, timer={}, rng=checkpoint.rng_state(torch.device("cpu")),
                               segments=[])


def crafted_files(marker: Path, runs_code: type) -> dict[str, bytes]:
    """Files that run code when unpickled: a torch.save zip archive and a bare pickle."""
    import io
    import pickle

    buffer = io.BytesIO()
    torch.save({"format": checkpoint.FORMAT, "run_id": "abc", "evil": runs_code(marker)}, buffer)
    return {"torch zip": buffer.getvalue(), "bare pickle": pickle.dumps(runs_code(marker))}


@pytest.mark.parametrize("kind", ["torch zip", "bare pickle"])
def test_a_crafted_checkpoint_runs_nothing_and_is_set_aside_as_unsafe(tmp_path, kind, runs_code) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "abc.pt"
    path.write_bytes(crafted_files(marker, runs_code)[kind])
    said: list[str] = []
    assert checkpoint.load(path, "abc", code_fingerprint(), said.append) is None
    assert not marker.exists()
    assert "unsafe or foreign" in said[-1] and "nothing in it was run" in said[-1], said
    assert not path.exists() and (tmp_path / "abc.pt.unused-1").exists()


def test_a_run_finding_a_crafted_checkpoint_trains_from_the_start_and_runs_nothing(tmp_path, runs_code) -> None:
    marker = tmp_path / "marker"
    spec = smoke_spec("prompt", tmp_path / "checkpoints")
    path = checkpoint_path(tmp_path / "checkpoints", run_id(spec.identity()))
    path.parent.mkdir()
    path.write_bytes(crafted_files(marker, runs_code)["torch zip"])
    said: list[str] = []
    row = run_one(spec, say=said.append)
    assert not marker.exists() and row["status"] in ("ok", "collapsed") and row["segments"] == 1
    assert any("unsafe or foreign" in line for line in said), said


def copy_of_the_code(tmp_path: Path) -> Path:
    import shutil

    for package in ("bench", "methods"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_the_fingerprint_covers_the_training_code_and_not_the_report_or_the_cli(tmp_path) -> None:
    root = copy_of_the_code(tmp_path)
    written = code_fingerprint(root)
    assert written == code_fingerprint()
    for unrelated in ("bench/report/pages.py", "bench/__main__.py", "bench/report/compare.py",
                      "bench/launchers/driver.py", "bench/launchers/serial.py", "bench/record/store.py"):
        assert (root / unrelated).is_file(), unrelated
        with (root / unrelated).open("a") as handle:
            handle.write("\n# a change that decides no number\n")
    assert code_fingerprint(root) == written
    for deciding in ("bench/execute/loop.py", "bench/execute/data.py", "methods/prefix/model.py",
                     "bench/execute/measure.py", "bench/execute/callbacks.py", "bench/plan.py"):
        copy = copy_of_the_code(tmp_path / deciding.replace("/", "-"))
        assert (copy / deciding).is_file(), deciding
        with (copy / deciding).open("a") as handle:
            handle.write("\n# a change to what decides the numbers\n")
        assert code_fingerprint(copy) != written, deciding


def test_a_report_only_change_keeps_a_checkpoint_resumable_and_a_loop_change_does_not(tmp_path) -> None:
    root = copy_of_the_code(tmp_path / "code")
    path = tmp_path / "abc.pt"
    checkpoint.save(path, snapshot("abc", code_fingerprint(root)))
    with (root / "bench/report/pages.py").open("a") as handle:
        handle.write("\n# the report changed\n")
    said: list[str] = []
    assert checkpoint.load(path, "abc", code_fingerprint(root), said.append).epochs_done == 1 and not said
    with (root / "methods/prefix/model.py").open("a") as handle:
        handle.write("\n# a method changed\n")
    assert checkpoint.load(path, "abc", code_fingerprint(root), said.append) is None
    assert "written by other training code" in said[-1] and "feedbeef" in said[-1]


def test_segments_add_up_and_compare_machines() -> None:
    peak = {"peak_mem_mb": 100.0, "peak_cuda_mem_mb": 0.0}
    first = Segments([], "cpu A").with_current(10.0, 12.0, 1.0, 10.0, peak)
    both = Segments(first, "cpu A").with_current(30.0, 31.0, 2.0, 30.0, {**peak, "peak_mem_mb": 150.0})
    total = Segments.totals(both)
    assert total["segments"] == 2 and total["train_s"] == 40.0 and total["run_s"] == 43.0
    assert total["other_cpu_load"] == pytest.approx(3.0 / 40.0) and total["peak"]["peak_mem_mb"] == 150.0
    assert total["one_machine"]
    assert not Segments.totals(Segments(first, "cpu B").with_current(1.0, 1.0, 0.0, 1.0, peak))["one_machine"]
    assert Segments.totals(Segments(first, "cpu A").with_current(1.0, 1.0, None, 1.0, peak))["other_cpu_load"] is None


def test_ctrl_c_between_epochs_then_the_same_command_resumes_the_run(tmp_path) -> None:
    results = tmp_path / "runs.csv"
    command = [sys.executable, "-m", "bench", "--grid", "smoke", "--methods", "finetune", "--backbones",
               "random-bert-small", "--threads", "1", "--seeds", "0", "--results", str(results),
               "--checkpoint-every", "0"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    never = subprocess.run([*command[:-1], "-1"], cwd=ROOT, capture_output=True, text=True, env=env)
    assert never.returncode == 2 and "--checkpoint-every must be a number of minutes >= 0" in never.stderr
    command[-1] = "0.000001"  # every epoch
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    folder = tmp_path / "checkpoints"
    deadline = time.monotonic() + 240
    while not list(folder.glob("*.pt")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "interrupted; not recorded, the next invocation resumes it from its checkpoint" in out
    assert read_rows(results) == []
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resuming from the checkpoint after epoch" in again.stdout
    (row,) = read_rows(results)
    assert row["status"] == "ok" and row["segments"] == "2"
    assert not list(folder.glob("*.pt"))
