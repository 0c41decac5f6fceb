"""What a grid refuses to record as a result, and what its exit code says: diverging losses, invalid
hyper-parameters and data (before anything runs), a grid naming a run twice, two processes running one
grid, busy-machine speeds, and the reproduce verdicts."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from bench.__main__ import main
from bench.config.grid_files import GRIDS
from bench.config.grids import GridError, Variant, narrow
from bench.execute.measure import CpuLoadMeter, speed_is_clean
from bench.launchers.serial import run_grid
from bench.record.store import read_rows
from methods.finetune.model import FineTune

ROOT = Path(__file__).resolve().parent.parent
QUICK = ["--grid", "smoke", "--methods", "finetune", "--backbones", "random-bert-tiny", "--threads", "1", "--quiet"]


def one_epoch(**overrides) -> object:
    """The smoke grid cut to one finetune run of one epoch on the tiny BERT."""
    grid = narrow(GRIDS["smoke"], backbones=["random-bert-tiny"], seeds=[0])
    return replace(grid, variants=(Variant("finetune", {"lr": 1e-3, "epochs": 1, **overrides}),))


def test_a_nan_loss_stops_training_at_that_step_and_fails_the_run(tmp_path, monkeypatch) -> None:
    calls = {"n": 0}
    real = FineTune.train_step

    def nan_at_step_3(self, input_ids, attention_mask, target):
        out = real(self, input_ids, attention_mask, target)
        calls["n"] += 1
        return {"loss": out["loss"] * float("nan")} if calls["n"] == 3 else out

    monkeypatch.setattr(FineTune, "train_step", nan_at_step_3)
    results = tmp_path / "runs.csv"
    outcome = run_grid(one_epoch(), results, threads=1, progress=False, say=lambda _: None)
    assert calls["n"] == 3  # stopped at once: no step after the NaN
    (row,) = read_rows(results)
    assert row["status"] == "failed" and row["acc"] == ""
    assert "TrainingDiverged: loss became nan at step 3 (epoch 1)" in row["error"]
    log = Path(row["error"].split("traceback in ")[1].rstrip(")"))
    assert log.exists() and "Traceback" in log.read_text()
    assert outcome.exit_code == 1


def test_an_exploding_finite_loss_fails_the_run(tmp_path, monkeypatch) -> None:
    real = FineTune.train_step

    def absurd_loss(self, input_ids, attention_mask, target):  # same gradients, absurd loss
        return {"loss": real(self, input_ids, attention_mask, target)["loss"] + 7e5}

    monkeypatch.setattr(FineTune, "train_step", absurd_loss)
    results = tmp_path / "runs.csv"
    run_grid(one_epoch(), results, threads=1, progress=False, say=lambda _: None)
    (row,) = read_rows(results)
    assert row["status"] == "failed" and "exceeds 10 x ln(2)" in row["error"]


def test_invalid_hyper_parameters_are_all_listed_before_anything_runs(tmp_path) -> None:
    grid = replace(GRIDS["smoke"], variants=(
        Variant("finetune", {"epochs": 0, "lr": float("nan")}),
        Variant("prompt", {"prompt_len": 0, "head_dropout": 1.0}, "prompt-bad"),
        Variant("prefix", {"init_std": -1.0, "projection": "yes", "typo": 3}),
    ))
    results = tmp_path / "runs.csv"
    with pytest.raises(GridError) as error:
        run_grid(grid, results, threads=1, progress=False, say=lambda _: None)
    message = str(error.value)
    for expected in ("finetune.epochs=0: must be an integer >= 1", "finetune.lr=nan: must be a finite number > 0",
                     "prompt-bad.prompt_len=0: must be an integer >= 1",
                     "prompt-bad.head_dropout=1.0: must be a number in [0, 1)",
                     "prefix.init_std=-1.0", "prefix.projection='yes': must be true or false",
                     "prefix: no setting ['typo']"):
        assert expected in message
    assert "\n" not in message and not results.exists()


def test_bad_task_data_is_exit_2_naming_the_file_before_anything_runs(tmp_path, capsys) -> None:
    data = tmp_path / "glue"
    data.mkdir()
    (data / "train.tsv").write_text("sentence\tlabel\n" + "".join(f"words {i}\t{i % 2}\n" for i in range(1100)))
    (data / "dev.tsv").write_text("sentence\tlabel\ngood\t1\nbad\t0\nodd\t7\n")
    results = tmp_path / "runs.csv"
    code = main(QUICK + ["--task", "sst2", "--data-dir", str(data), "--results", str(results)])
    err = capsys.readouterr().err
    assert code == 2 and "dev.tsv line 4: label 7" in err and err.count("\n") == 1
    assert not results.exists()


@pytest.mark.parametrize("argv, message", [
    (["--methods", ""], "--methods names nothing"),
    (["--seeds", ""], "--seeds names nothing"),
    (["--seeds", "-1"], "seeds must be integers >= 0"),
    (["--device", "gpu"], "--device 'gpu' is not"),
    (["--threads", "0"], "--threads must be at least 1"),
])
def test_empty_or_bad_selections_are_exit_2(argv, message, tmp_path, capsys) -> None:
    results = tmp_path / "runs.csv"
    argv = [a for a in QUICK if a not in ("--methods", "finetune")] + argv if "--methods" in argv else QUICK + argv
    assert main(argv + ["--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not results.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch build without CUDA")
def test_cuda_on_a_cpu_build_is_exit_2(tmp_path, capsys) -> None:
    assert main(QUICK + ["--device", "cuda", "--results", str(tmp_path / "runs.csv")]) == 2
    assert "sees no CUDA GPU; accepted here: cpu" in capsys.readouterr().err


def test_an_unwritable_results_path_is_exit_2(tmp_path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(QUICK + ["--results", str(blocker / "runs.csv")]) == 2
    err = capsys.readouterr().err
    assert "cannot create the results folder" in err and str(blocker) in err and err.count("\n") == 1


def test_a_grid_whose_runs_all_fail_exits_1(tmp_path, capsys) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8}))
    save_file({"unrelated": torch.zeros(2)}, broken / "model.safetensors")  # whole file, fails only when loaded
    (broken / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    results = tmp_path / "runs.csv"
    argv = [a for a in QUICK if a != "random-bert-tiny"] + ["--backbones", str(broken)]
    argv.remove("--backbones")  # QUICK's own --backbones flag, whose value was dropped above
    assert main(argv + ["--seeds", "0", "--results", str(results)]) == 1
    captured = capsys.readouterr()
    assert "1 run(s) failed" in captured.err and "1 failed" in captured.out
    assert [r["status"] for r in read_rows(results)] == ["failed"]


def test_a_model_folder_without_weights_is_exit_2_before_anything_runs(tmp_path, capsys) -> None:
    folder = tmp_path / "no-weights"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8}))
    results = tmp_path / "runs.csv"
    argv = [a for a in QUICK if a != "random-bert-tiny"]
    argv[argv.index("--backbones") + 1:argv.index("--backbones") + 1] = [f"random-bert-tiny,{folder}"]
    assert main(argv + ["--seeds", "0,1", "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert f"backbone folder '{folder}' cannot be loaded: no model weights" in err and err.count("\n") == 1
    assert not results.exists()


def test_a_run_named_twice_runs_once_and_a_second_invocation_reuses_it(tmp_path, capsys) -> None:
    results = tmp_path / "runs.csv"
    assert main(QUICK + ["--seeds", "0,0", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "names 2 runs but only 1 are distinct" in out and "1 of 1 run(s) measured now (1 ok)" in out
    assert len(read_rows(results)) == 1
    assert main(QUICK + ["--seeds", "0", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "reused, measured" in out and "0 of 1 run(s) measured now" in out and "1 reused" in out
    assert len(read_rows(results)) == 1


def test_two_processes_on_one_grid_run_each_run_once(tmp_path) -> None:
    results = tmp_path / "runs.csv"
    command = [sys.executable, "-m", "bench", *QUICK, "--seeds", "0,1,2", "--results", str(results)]
    procs = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    rows = read_rows(results)
    assert sorted(int(r["seed"]) for r in rows) == [0, 1, 2]  # each run recorded exactly once
    assert results.read_text().count("schema_version,run_id") == 1


def test_the_cpu_load_of_other_processes_is_measured(tmp_path) -> None:
    stat = tmp_path / "stat"
    hz = __import__("os").sysconf("SC_CLK_TCK")

    def write(core0_user: int, core2_user: int) -> None:
        stat.write_text(f"cpu  0 0 0 0 0 0 0 0 0 0\ncpu0 {core0_user} 0 100 1000 0 0 0 0 0 0\n"
                        f"cpu1 100 0 100 1000 0 0 0 0 0 0\ncpu2 {core2_user} 0 100 1000 0 0 0 0 0 0\n")

    write(100, 100)
    with CpuLoadMeter(str(stat), cores={0, 1}) as meter:
        start = time.process_time()
        time.sleep(0.2)
        write(100 + int(0.2 * hz), 100 + int(0.2 * hz))  # a core of ours and one we may not use kept busy
        assert time.process_time() - start < 0.05
    assert 0.6 < meter.load < 1.1  # cpu2 is outside the affinity: not counted
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        with CpuLoadMeter() as real:
            time.sleep(1.0)
    finally:
        busy.kill()
    assert real.load > 0.5
    assert speed_is_clean(0.1, threads=2, cores=2) and not speed_is_clean(0.9, threads=2, cores=2)
    assert speed_is_clean(0.9, threads=1, cores=2) and speed_is_clean(None, 2, 2) is None


def test_reproduce_runs_into_its_own_file_and_gives_a_verdict(tmp_path, capsys) -> None:
    committed = tmp_path / "committed"
    assert main(QUICK + ["--seeds", "0", "--results", str(committed / "runs.csv")]) == 0
    here = tmp_path / "here" / "runs.csv"
    capsys.readouterr()
    assert main(["reproduce", *QUICK, "--seeds", "0", "--results", str(here), "--against", str(committed)]) == 0
    out = capsys.readouterr().out
    assert "1 of 1 run(s) measured now" in out  # real work, not "reused"
    line = next(line for line in out.splitlines() if line.startswith("| random-bert-tiny"))
    assert "| identical " in line
    assert len(read_rows(committed / "runs.csv")) == 1 and len(read_rows(here)) == 1


def test_reproduce_verdicts() -> None:
    from bench.report.reproduce import verdict

    assert verdict([0.80, 0.82, 0.84], [0.81], same_seeds_equal=False) == "agrees"
    assert verdict([0.80, 0.82, 0.84], [0.70], same_seeds_equal=False) == "DIFFERS"
    assert verdict([0.80], [0.80], same_seeds_equal=True) == "identical"
    assert verdict([0.80], [0.79], same_seeds_equal=False) == "agrees"  # within the 1.5-point floor
    assert verdict([], [0.8], same_seeds_equal=False) == "not committed"


def test_a_backbone_that_cannot_be_had_is_exit_2_before_anything_runs(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("BENCH_ONLINE", raising=False)
    results = tmp_path / "runs.csv"
    argv = ["--grid", "bert-sizes", "--backbones", "bert-tiny,random-bert-tiny", "--results", str(results)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "backbone 'bert-tiny' (google/bert_uncased_L-2_H-128_A-2) is not in the local Hugging Face cache" in err
    assert err.count("\n") == 1 and not results.exists()


def test_a_run_held_by_another_process_is_revisited_at_the_end(tmp_path) -> None:
    import threading

    from bench.launchers.driver import expand
    from bench.record.schema import run_id
    from bench.record.store import RunClaim
    from bench.tasks import load_task

    grid = replace(narrow(GRIDS["smoke"], methods=["finetune"], backbones=["random-bert-tiny"], seeds=[0, 1]))
    results = tmp_path / "runs.csv"
    first = expand(grid, load_task("synthetic"), "cpu", 1, say=lambda _: None)[0]
    taken, done = threading.Event(), threading.Event()

    def other_process() -> None:  # holds seed 0's claim, as another process running it would
        claim = RunClaim(results, run_id(first.identity()))
        assert claim.acquire()
        taken.set()
        done.wait(120)
        claim.release()

    holder = threading.Thread(target=other_process)
    holder.start()
    assert taken.wait(30)
    lines: list[str] = []

    def release_when_seed_1_is_done(text: str) -> None:
        lines.append(text)
        if "seed 1: ok" in text:
            threading.Timer(1.0, done.set).start()

    outcome = run_grid(grid, results, threads=1, progress=False, say=release_when_seed_1_is_done)
    holder.join(30)
    text = "\n".join(lines)
    assert "seed 0: being run by another process right now; coming back to it at the end" in text
    assert "seed 0: waiting for the other process running it to finish" in text
    assert [r["seed"] for r in read_rows(results)] == ["1", "0"]  # the other "process" recorded nothing
    assert outcome.exit_code == 0 and outcome.elsewhere == 1
