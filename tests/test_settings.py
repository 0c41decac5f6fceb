"""Typed settings: what a run resolves to is what it records and what the loop actually reads."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from bench.config.grid_files import GRIDS
from bench.config.grids import BUDGETS, Variant, narrow
from bench.execute.loop import _schedule
from bench.launchers.serial import run_grid
from bench.plan import RunSpec
from bench.record.store import read_rows
from methods import METHODS
from methods.settings import CONSTANT, LINEAR_DECAY, TrainingSettings


def spec(method: str, budget: str = "default", **overrides) -> RunSpec:
    return RunSpec("g", "mr", "minilm-l6", Variant(method, overrides), 0, BUDGETS[budget])


def test_a_run_resolves_method_defaults_then_budget_then_overrides_then_the_epoch_cap() -> None:
    training, own = spec("prompt").settings()
    assert (training.lr, training.epochs, training.weight_decay) == (1e-2, 3, 0.0)  # 10 epochs capped to 3
    assert (training.batch_size, training.max_len) == (32, 64)  # the budget's
    assert own.prompt_len == 16 and own.init == "vocab"
    training, own = spec("prompt", batch_size=16, max_len=128, prompt_len=4, lr=1).settings()
    assert (training.batch_size, training.max_len, own.prompt_len) == (16, 128, 4)
    assert training.lr == 1.0 and isinstance(training.lr, float)  # TOML's `lr = 1` is still a float
    assert spec("prompt", "smoke").settings()[0].max_len == 32
    assert spec("prompt", "full").settings()[0].epochs == 10


def test_hparams_record_both_settings_objects_and_nothing_else_of_the_method() -> None:
    hparams = spec("prefix", projection=True).hparams()
    entry = METHODS["prefix"]
    expected = {"method", "train_cap", "select_cap", "bucketing", *TrainingSettings.fields(), *entry.settings.fields()}
    expected -= {"precision"}  # added later: recorded only when not fp32
    assert set(hparams) == expected
    assert hparams["projection"] is True and hparams["schedule"] == LINEAR_DECAY
    json.dumps(hparams)  # recordable as is


def test_problems_are_listed_for_both_kinds_with_what_is_accepted() -> None:
    problems = METHODS["prompt"].problems({"optimizer": "SGD", "schedule": "cosine", "init": "zeros",
                                           "batch_size": 0, "prompt_length": 3})
    text = "; ".join(problems)
    for expected in ["prompt: no setting ['prompt_length']", "prompt.optimizer='SGD': must be one of 'AdamW', 'Adam'",
                     "prompt.schedule='cosine'", "prompt.init='zeros': must be one of 'vocab', 'normal'",
                     "prompt.batch_size=0: must be an integer >= 1"]:
        assert expected in text


def test_the_schedules_are_what_their_names_say() -> None:
    def factors(name: str) -> list[float]:
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        scheduler = _schedule(optimizer, 10, TrainingSettings(warmup_ratio=0.2, schedule=name))
        out = []
        for _ in range(10):
            out.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        return out

    assert factors(LINEAR_DECAY) == pytest.approx([0.5, 1.0, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125])
    assert factors(CONSTANT) == pytest.approx([0.5] + [1.0] * 9)


def test_the_loop_uses_the_optimizer_and_batch_size_a_row_records(tmp_path, monkeypatch) -> None:
    made = []

    class SpyAdam(torch.optim.Adam):
        def __init__(self, params, **kwargs):
            made.append(kwargs)
            super().__init__(params, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", SpyAdam)
    import bench.execute.loop

    batch_sizes, real_loader = [], bench.execute.loop.train_loader
    monkeypatch.setattr(bench.execute.loop, "train_loader", lambda data, size, *rest: batch_sizes.append(size)
                        or real_loader(data, size, *rest))
    grid = narrow(GRIDS["smoke"], backbones=["random-bert-tiny"], seeds=[0])
    grid = replace(grid, variants=(Variant("finetune", {"epochs": 1, "optimizer": "Adam", "lr": 1e-3,
                                                         "batch_size": 400}),))
    results = tmp_path / "runs.csv"
    run_grid(grid, results, threads=1, progress=False, say=lambda _: None)
    row = read_rows(results)[0]
    assert row["status"] == "ok" and made == [{"lr": 1e-3, "weight_decay": 0.01}]
    hparams = json.loads(row["hparams"])
    assert hparams["optimizer"] == "Adam" and hparams["batch_size"] == 400
    assert batch_sizes == [400] and int(row["n_train"]) == 800


def test_precision_is_recorded_only_when_not_the_default_so_older_run_ids_hold() -> None:
    assert "precision" not in spec("prompt").hparams()
    assert spec("prompt", precision="bf16").hparams()["precision"] == "bf16"
    assert spec("prompt").identity() != spec("prompt", precision="bf16").identity()
    assert METHODS["prompt"].problems({"precision": "fp16"}) == [
        "prompt.precision='fp16': must be one of 'fp32', 'bf16'"]


def test_bf16_autocasts_the_forward_and_keeps_fp32_weights_and_logits() -> None:
    from methods import build
    from tests.test_methods import LABELS, batch, tiny_backbone

    b = batch()
    torch.manual_seed(1)
    fp32 = build("finetune", tiny_backbone("bert"), LABELS).eval()
    torch.manual_seed(1)
    bf16 = build("finetune", tiny_backbone("bert"), LABELS, precision="bf16").eval()
    with torch.no_grad():
        exact, mixed = fp32(b["input_ids"], b["attention_mask"]), bf16(b["input_ids"], b["attention_mask"])
    assert mixed.dtype == torch.float32 and not torch.equal(exact, mixed)
    torch.testing.assert_close(mixed, exact, atol=0.05, rtol=0.05)
    bf16.train()
    bf16.train_step(**b)["loss"].backward()
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in bf16.trainable_parameters())


def test_a_bf16_run_records_its_precision_and_the_bf16_peak(tmp_path) -> None:
    grid = narrow(GRIDS["smoke"], backbones=["random-bert-tiny"], seeds=[0], methods=["finetune"])
    grid = replace(grid, variants=(Variant("finetune", {"epochs": 1, "lr": 1e-3, "precision": "bf16"}),
                                   Variant("finetune", {"epochs": 1, "lr": 1e-3}, "finetune-fp32")))
    results = tmp_path / "runs.csv"
    run_grid(grid, results, threads=1, progress=False, say=lambda _: None)
    rows = {r["method"]: r for r in read_rows(results)}
    assert rows["finetune"]["status"] == rows["finetune-fp32"]["status"] == "ok"
    assert json.loads(rows["finetune"]["hparams"])["precision"] == "bf16"
    assert "precision" not in json.loads(rows["finetune-fp32"]["hparams"])
    assert rows["finetune"]["matmul_peak_flops_per_s"] != rows["finetune-fp32"]["matmul_peak_flops_per_s"]
    from bench.report.pages import write_reports

    write_reports(tmp_path, tmp_path / "reports")
    page = (tmp_path / "reports" / "smoke-synthetic.md").read_text()
    assert "## Budget `smoke` on `cpu` in `bf16`" in page and "## Budget `smoke` on `cpu`\n" in page
    assert "--set finetune.precision=bf16" in page


@pytest.mark.parametrize(("bf16_peak", "warned"), [(1e9, True), (4e10, False)])
def test_the_grid_prints_each_precisions_peak_and_warns_when_bf16_is_no_faster(tmp_path, monkeypatch, bf16_peak,
                                                                                warned) -> None:
    import bench.execute.measure

    monkeypatch.setattr(bench.execute.measure, "measure_matmul_peak",
                        lambda device, precision="fp32": {"fp32": 2e10, "bf16": bf16_peak}[precision])
    grid = narrow(GRIDS["smoke"], backbones=["random-bert-tiny"], seeds=[0], methods=["finetune"])
    grid = replace(grid, variants=(Variant("finetune", {"epochs": 1, "lr": 1e-3, "precision": "bf16"}),))
    lines: list[str] = []
    run_grid(grid, tmp_path / "runs.csv", threads=1, progress=False, say=lines.append)
    assert f"matmul peak fp32 20.0, bf16 {bf16_peak / 1e9:.1f} GFLOP/s" in "\n".join(lines)
    assert any("bf16 runs will likely be slower than fp32" in line for line in lines) is warned
    assert float(read_rows(tmp_path / "runs.csv")[0]["matmul_peak_flops_per_s"]) == bf16_peak
