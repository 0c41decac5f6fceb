"""End to end: the smoke grid through the CLI, resuming, failed runs, and clear errors for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from bench.__main__ import main
from bench.backbones import BackboneError, load_backbone
from bench.config.grid_files import GRIDS
from bench.config.grids import narrow
from bench.launchers.serial import run_grid
from bench.record.store import read_rows

ROOT = Path(__file__).resolve().parent.parent


def test_smoke_grid_runs_records_and_resumes(tmp_path) -> None:
    results = tmp_path / "runs.csv"
    command = [sys.executable, "-m", "bench", "--grid", "smoke", "--results", str(results), "--threads", "2"]
    first = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    rows = read_rows(results)
    assert len(rows) == 6
    assert {r["status"] for r in rows} == {"ok"}
    for r in rows:
        assert float(r["train_samples_per_s"]) > 0 and float(r["eval_samples_per_s"]) > 0
        assert 1 <= int(r["best_epoch"]) <= int(r["epochs"])
        assert json.loads(r["hparams"])["method"] == r["method"]
        if r["method"] == "finetune":
            assert float(r["acc"]) > float(r["majority_rate"]) + 0.2
    second = subprocess.run(command + ["--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0
    assert "reused, measured" in second.stdout and "0 of 6 run(s) measured now" in second.stdout
    assert len(read_rows(results)) == 6  # nothing re-run, nothing lost


def test_a_failing_run_is_recorded_and_the_grid_goes_on(tmp_path) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8}))
    save_file({"unrelated": torch.zeros(2)}, broken / "model.safetensors")  # whole file, fails only when loaded
    (broken / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    grid = narrow(GRIDS["smoke"], methods=["prompt"], backbones=[str(broken), "random-bert-tiny"])
    results = tmp_path / "runs.csv"
    run_grid(grid, results, threads=1, progress=False, say=lambda _: None)
    rows = read_rows(results)
    statuses = {Path(r["backbone"]).name: r["status"] for r in rows}
    assert statuses == {"broken-model": "failed", "random-bert-tiny": "ok"}
    failed = next(r for r in rows if r["status"] == "failed")
    assert failed["error"] and failed["acc"] == ""


@pytest.mark.parametrize("argv, message", [
    (["--grid", "nope"], "unknown grid 'nope'; accepted: bert-sizes, lr-sweep"),
    (["--grid", "smoke", "--methods", "lorra"], "unknown method 'lorra'; accepted: bitfit, finetune, ia3, lora"),
    (["--grid", "smoke", "--backbones", "gpt9"], "unknown backbone 'gpt9'; accepted: minilm-l3"),
    (["--grid", "smoke", "--task", "imdb"], "unknown task 'imdb'; accepted: sst2, mr, synthetic, or auto"),
    (["--grid", "smoke", "--budget", "huge"], "unknown budget 'huge'; accepted: default"),
])
def test_bad_input_is_one_clear_error(argv, message, capsys, tmp_path) -> None:
    results = tmp_path / "runs.csv"
    assert main(argv + ["--results", str(results)]) == 2
    assert message in capsys.readouterr().err
    assert not results.exists()


def test_results_file_of_another_schema_is_refused_untouched(tmp_path, capsys) -> None:
    results = tmp_path / "runs.csv"
    results.write_text("a,b\n1,2\n")
    assert main(["--grid", "smoke", "--results", str(results)]) == 2
    assert "another schema" in capsys.readouterr().err
    assert results.read_text() == "a,b\n1,2\n"


def test_hub_backbone_fails_fast_offline(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("BENCH_ONLINE", raising=False)
    start = time.perf_counter()
    with pytest.raises(BackboneError, match="BENCH_ONLINE=1"):
        load_backbone("bert-tiny")
    assert time.perf_counter() - start < 60  # not a speed target: retrying a Hub that is not there takes minutes


def test_list_shows_every_grid_and_method(capsys) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    expected = ["finetune", "prompt", "prefix", "minilm-l3", "mpnet-base", "mr", "sst2", ".toml task file"]
    for name in list(GRIDS) + expected:
        assert name in out


def test_ruff_is_clean() -> None:
    ruff = Path(sys.executable).with_name("ruff")
    result = subprocess.run([str(ruff), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_reader_that_goes_away_stops_the_output_quietly() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line (as `list | head -1` after its line)
    try:
        listing = subprocess.run([sys.executable, "-m", "bench", "list"], cwd=ROOT, stdout=write_end,
                                 stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert listing.returncode == 141 and "Traceback" not in listing.stderr


def test_a_closed_console_during_a_run_stops_the_grid_without_a_failed_row(tmp_path, monkeypatch) -> None:
    import bench.execute.loop

    def console_gone(*_, **__):
        raise BrokenPipeError(32, "Broken pipe")  # a progress line written to a closed pipe

    monkeypatch.setattr(bench.execute.loop, "run_one", console_gone)
    results = tmp_path / "runs.csv"
    grid = narrow(GRIDS["smoke"], methods=["prompt"], backbones=["random-bert-tiny"])
    with pytest.raises(BrokenPipeError):
        run_grid(grid, results, threads=1, progress=False, say=lambda _: None)
    assert not results.exists() or read_rows(results) == []
