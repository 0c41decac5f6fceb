"""Reports: aggregation over seeds, failed/collapsed runs kept out of means, ordering, byte-identical
re-rendering, and the committed reports matching the committed results."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import pytest
from fake_rows import make_row

from bench.record.store import append_row
from bench.report.aggregate import aggregate
from bench.report.compare import compare
from bench.report.load import load_results
from bench.report.pages import check_reports, write_reports
from bench.report.tables import main_table

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def results_dir(tmp_path) -> Path:
    path = tmp_path / "results" / "runs.csv"
    for seed, acc in enumerate([0.80, 0.82, 0.84]):
        append_row(path, make_row("minilm-l6", "finetune", seed, acc))
        append_row(path, make_row("minilm-l6", "prefix", seed, acc - 0.05))
    append_row(path, make_row("minilm-l6", "prefix", 3, 0.5, status="collapsed"))
    append_row(path, make_row("minilm-l6", "prefix", 4, 0.0, status="failed", error="boom"))
    append_row(path, make_row("minilm-l3", "prompt", 0, 0.70, train_samples_per_s=120.0))
    append_row(path, make_row("minilm-l3", "finetune", 0, 0.72, train_samples_per_s=60.0))
    return path.parent


def test_aggregation_keeps_failed_and_collapsed_out_of_the_means(results_dir) -> None:
    table = aggregate(load_results(results_dir))
    prefix = table[(table.backbone == "minilm-l6") & (table.method == "prefix")].iloc[0]
    assert prefix.n_ok == 3 and prefix.n_collapsed == 1 and prefix.n_failed == 1
    assert prefix.acc_mean == pytest.approx(0.77)
    assert prefix.acc_std == pytest.approx(0.02)  # sample std of 0.75, 0.77, 0.79
    assert prefix.gap == pytest.approx(-0.05)
    assert prefix.samples_per_s == pytest.approx(51.0)  # median over ok seeds 50, 51, 52
    l3_prompt = table[(table.backbone == "minilm-l3") & (table.method == "prompt")].iloc[0]
    assert l3_prompt.speed_ratio == pytest.approx(2.0)
    assert l3_prompt.acc_std != l3_prompt.acc_std  # one seed: no std, shown without ±


def test_speeds_from_different_cpus_are_not_pooled(results_dir, tmp_path) -> None:
    path = results_dir / "runs.csv"
    for seed in (5, 6):  # two more finetune seeds on a CPU twice as fast: accuracy yes, speed no
        append_row(path, make_row("minilm-l6", "finetune", seed, 0.90, cpu="y", train_samples_per_s=500.0,
                                  train_flops_per_s=4e9, matmul_peak_flops_per_s=2e10))
    rows = load_results(results_dir)
    table = aggregate(rows)
    finetune = table[(table.backbone == "minilm-l6") & (table.method == "finetune")].iloc[0]
    assert finetune.n_ok == 5 and finetune.acc_mean == pytest.approx((0.80 + 0.82 + 0.84 + 0.90 + 0.90) / 5)
    assert finetune.samples_per_s == pytest.approx(51.0) and finetune.n_timed == 3
    assert finetune.utilisation == pytest.approx(0.1)
    write_reports(results_dir, tmp_path / "reports")
    page = (tmp_path / "reports" / "sizes-mr.md").read_text()
    assert "over the 8 ok runs on x only; the 2 ok runs on y count toward accuracy" in page
    assert "x 10.0 GFLOP/s; y 20.0 GFLOP/s" in page


def test_speeds_from_cpus_of_one_name_with_different_features_are_not_pooled(tmp_path) -> None:
    path = tmp_path / "results" / "runs.csv"
    for seed, (features, speed) in enumerate([("avx2 avx512f avx512_bf16 amx_bf16", 90.0),
                                              ("avx2 avx512f avx512_bf16 amx_bf16", 100.0), ("avx2", 40.0)]):
        append_row(path, make_row("minilm-l6", "finetune", seed, 0.8, cpu="Xeon", cpu_features=features,
                                  train_samples_per_s=speed))
    table = aggregate(load_results(path.parent))
    assert table.iloc[0].samples_per_s == pytest.approx(95.0) and table.iloc[0].n_ok == 3
    write_reports(path.parent, tmp_path / "reports")
    page = (tmp_path / "reports" / "sizes-mr.md").read_text()
    assert "CPU: Xeon (avx2 avx512f avx512_bf16 amx_bf16), Xeon (avx2)\n" in page
    assert "the 1 ok runs on Xeon (avx2) count toward accuracy" in page


def test_speeds_from_different_gpus_are_not_pooled(tmp_path) -> None:
    path = tmp_path / "results" / "runs.csv"
    for seed, (gpu, speed) in enumerate([("NVIDIA H200", 900.0), ("NVIDIA H200", 1000.0), ("NVIDIA A100", 400.0)]):
        append_row(path, make_row("minilm-l6", "finetune", seed, 0.8, device="cuda", accelerator=gpu,
                                  train_samples_per_s=speed))
    table = aggregate(load_results(path.parent))
    assert table.iloc[0].samples_per_s == pytest.approx(950.0) and table.iloc[0].n_ok == 3
    write_reports(path.parent, tmp_path / "reports")
    page = (tmp_path / "reports" / "sizes-mr.md").read_text()
    assert "GPU: NVIDIA A100, NVIDIA H200" in page and "the 1 ok runs on NVIDIA A100 count toward accuracy" in page


def test_a_rerun_supersedes_the_earlier_row(results_dir) -> None:
    path = results_dir / "runs.csv"
    append_row(path, make_row("minilm-l3", "finetune", 0, 0.75, train_samples_per_s=66.0))  # same run_id
    table = aggregate(load_results(results_dir))
    finetune = table[(table.backbone == "minilm-l3") & (table.method == "finetune")].iloc[0]
    assert finetune.n_ok == 1 and finetune.acc_mean == pytest.approx(0.75) and finetune.samples_per_s == 66.0


def test_rows_are_ordered_by_backbone_size_then_method(results_dir) -> None:
    table = aggregate(load_results(results_dir))
    assert list(zip(table.backbone, table.method, strict=True)) == [
        ("minilm-l3", "finetune"), ("minilm-l3", "prompt"), ("minilm-l6", "finetune"), ("minilm-l6", "prefix")]
    text = main_table(table)
    assert "77.0 ± 2.0" in text and "⚠ 1 collapsed, ✗ 1 failed" in text and "| -5.0 " in text


def test_render_is_byte_identical(results_dir, tmp_path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    write_reports(results_dir, first)
    write_reports(results_dir, second)
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    assert "README.md" in names and "sizes-mr.md" in names and any(n.endswith(".png") for n in names)
    _, mismatch, errors = filecmp.cmpfiles(first, second, names, shallow=False)
    assert not mismatch and not errors
    assert check_reports(results_dir, first) == 0
    (first / "sizes-mr.md").write_text("edited by hand\n")
    assert check_reports(results_dir, first) == 1


def test_page_carries_notes_and_reference_points(results_dir, tmp_path) -> None:
    out = tmp_path / "reports"
    write_reports(results_dir, out)
    page = (out / "sizes-mr.md").read_text()
    assert "sentence-embedding fine-tunes" in page and "not SST-2 numbers" in page
    assert "python -m bench --grid sizes --task mr --budget default" in page
    index = (out / "README.md").read_text()
    assert "73.74" in index and "other people's numbers" in index


def test_compare_prints_ratios(results_dir, tmp_path) -> None:
    after = tmp_path / "after.csv"
    append_row(after, make_row("minilm-l3", "finetune", 0, 0.74, train_samples_per_s=90.0))
    text = compare(str(results_dir / "runs.csv"), str(after))
    cells = next([c.strip() for c in x.split("|")] for x in text.splitlines() if "minilm-l3" in x)
    assert cells[5] == "fp32" and cells[7:9] == ["minilm-l3", "finetune"]
    assert cells[9:18] == ["0", "0", "0.7200", "0.7400", "60.0", "90.0", "1.50", "1.00", ""]


def test_compare_drops_superseded_rows_marks_seed_sets_and_never_divides_across_cpus(tmp_path) -> None:
    before, after = tmp_path / "before.csv", tmp_path / "after.csv"
    for seed in (0, 1, 2):
        append_row(before, make_row("minilm-l6", "prompt", seed, 0.70, cpu="AMD", train_samples_per_s=50.0))
    append_row(before, make_row("minilm-l6", "prompt", 0, 0.90, cpu="AMD", train_samples_per_s=50.0))  # a re-run
    append_row(after, make_row("minilm-l6", "prompt", 0, 0.71, cpu="Intel", train_samples_per_s=80.0))
    append_row(after, make_row("minilm-l6", "prompt", 1, 0.71, cpu="Intel", train_samples_per_s=10.0,
                               speed_clean=False, run_id="busy"))
    line = next(x for x in compare(str(before), str(after)).splitlines() if "minilm-l6" in x)
    cells = [c.strip() for c in line.split("|")]
    assert cells[9:15] == ["0,1,2", "0,1", "0.7667", "0.7100", "50.0", "80.0"]  # seed 0 re-run: 0.90 replaces 0.70;
    # the busy run counts toward accuracy, not speed
    assert cells[15:17] == ["–", "–"]  # no ratio between an AMD and an Intel speed
    assert "seeds differ (0,1,2 vs 0,1)" in cells[17] and "different CPUs (AMD vs Intel)" in cells[17]


def test_committed_reports_match_committed_results() -> None:
    if not any((ROOT / "results").glob("*.csv")):
        pytest.skip("no committed results yet")
    assert check_reports(ROOT / "results", ROOT / "reports") == 0, "run: python -m bench report"


def test_each_backbone_gets_a_verdict_line(results_dir) -> None:
    from bench.report.tables import verdicts

    lines = verdicts(aggregate(load_results(results_dir)))
    # minilm-l6: finetune 82.0 ± 2.0 is best; prefix (77.0) is not within one std, so finetune is also the
    # cheapest and fastest of the close ones
    l6 = next(line for line in lines if "minilm-l6" in line)
    assert "most accurate `finetune` (82.0 ± 2.0 %)" in l6 and "(≥ 80.0 %)" in l6
    assert "cheapest `finetune`" in l6 and "fastest `finetune` (51.0 train samples/s)" in l6
    # minilm-l3: one seed each, no std: finetune (72.0) best, prompt (70.0) not within it
    l3 = next(line for line in lines if "minilm-l3" in line)
    assert "most accurate `finetune` (72.0 %)" in l3 and "cheapest `finetune`" in l3


def test_a_close_cheaper_faster_method_is_named(tmp_path) -> None:
    from bench.report.tables import verdicts

    path = tmp_path / "runs.csv"
    for seed, (ft, pr) in enumerate([(0.80, 0.79), (0.84, 0.80), (0.82, 0.81)]):
        append_row(path, make_row("minilm-l6", "finetune", seed, ft, train_samples_per_s=50.0))
        append_row(path, make_row("minilm-l6", "prompt", seed, pr, train_samples_per_s=80.0))
    (line,) = verdicts(aggregate(load_results(tmp_path)))
    assert "most accurate `finetune`" in line and "cheapest `prompt` (6.91K trainable)" in line
    assert "fastest `prompt` (80.0 train samples/s)" in line


def _figures(rows):
    from bench.report.aggregate import speed_source
    from bench.report.figures import figures

    return figures(aggregate(rows), "sizes/mr/default", speed_source(rows))


def test_accuracy_axes_are_zoomed_to_the_data_and_every_point_is_named(results_dir) -> None:
    import matplotlib.pyplot as plt

    figs = _figures(load_results(results_dir))  # accuracies 70 to 84 %, majority class 50 %
    for suffix in ("acc-vs-size", "acc-vs-trainable"):
        fig = figs[suffix]
        ax = fig.axes[0]
        low, high = ax.get_ylim()
        assert 65 < low < 70 and 84 < high < 88  # from the data (mean ± std), not down to 50 %
        assert ax.get_ylabel().startswith("eval accuracy (%)") and "log scale" in ax.get_xlabel()
        assert not [line for line in ax.get_lines() if list(line.get_ydata()) == [50.0, 50.0]]  # off the axis...
        legend = ax.get_legend()
        texts = [t.get_text() for t in legend.get_texts()]
        assert texts[:3] == ["finetune", "prompt", "prefix"]
        assert "majority class\n50.0 % (below the axis)" in texts  # ...but named
        fig.canvas.draw()  # the legend sits right of the axes, over no data
        assert legend.get_window_extent().x0 >= ax.get_window_extent().x1
    size_ticks = [t.get_text() for t in figs["acc-vs-size"].axes[0].get_xticklabels()]
    assert size_ticks == ["minilm-l3 / minilm-l6 (22.6M)"]  # both 22.6M in these rows: one tick names both
    labels = sorted((t.get_text(), t.get_color()) for t in figs["acc-vs-trainable"].axes[0].texts)
    assert [name for name, _ in labels] == ["minilm-l3", "minilm-l3", "minilm-l6", "minilm-l6"]  # one per point
    for fig in figs.values():
        plt.close(fig)


def test_majority_line_is_drawn_when_the_data_reaches_it(tmp_path) -> None:
    import matplotlib.pyplot as plt

    path = tmp_path / "runs.csv"
    for seed, acc in enumerate([0.48, 0.52, 0.50]):
        append_row(path, make_row("minilm-l6", "prompt", seed, acc))
    figs = _figures(load_results(tmp_path))
    ax = figs["acc-vs-size"].axes[0]
    low, high = ax.get_ylim()
    assert low < 48 and 52 < high < 60
    assert [line for line in ax.get_lines() if list(line.get_ydata()) == [50.0, 50.0]]
    assert "majority class\n50.0 %" in [t.get_text() for t in ax.get_legend().get_texts()]
    for fig in figs.values():
        plt.close(fig)


def test_throughput_bars_carry_their_values_and_the_title_names_the_cpu(results_dir) -> None:
    import matplotlib.pyplot as plt

    path = results_dir / "runs.csv"
    for seed in (5, 6):  # on another CPU: counted for accuracy, left out of the speeds, and the plot says so
        append_row(path, make_row("minilm-l6", "finetune", seed, 0.90, cpu="y", train_samples_per_s=500.0))
    fig = _figures(load_results(results_dir))["throughput"]
    title = fig.get_suptitle()
    assert "training throughput on x, 2 threads" in title and "2 ok run(s) on y left out" in title
    l3, l6 = fig.axes
    assert l3.get_title() == "minilm-l3 (22.6M params)" and l3.get_ylabel().startswith(
        "training throughput (samples/s)")
    assert [t.get_text() for t in l3.get_xticklabels()] == ["finetune", "prompt"]
    assert [t.get_text() for t in l3.texts] == ["60.0", "120.0"]  # a value on every bar
    assert [t.get_text() for t in l6.texts] == ["51.0\n(n=3)", "51.0"]  # finetune: 3 of its 5 seeds timed on x
    assert "(n=…): the median is over fewer runs than seeds" in title
    assert l3.get_ylim()[0] == 0 and l3.get_yscale() == "linear"
    plt.close(fig)


def test_spread_moves_overlapping_labels_apart_and_leaves_the_others() -> None:
    from bench.report.figures import _spread

    assert _spread([1.0, 5.0, 9.0], 1.0) == [1.0, 5.0, 9.0]
    placed = _spread([5.0, 5.2, 1.0, 5.1], 1.0)
    assert placed[2] == 1.0 and placed[0] == pytest.approx(4.1) and placed[3] == pytest.approx(5.1)
    assert placed[1] == pytest.approx(6.1)


def test_the_page_lists_why_runs_failed(results_dir, tmp_path) -> None:
    path = results_dir / "runs.csv"
    refusal = "MethodRefused: the method's parameters leave the logits unchanged"
    for seed in (5, 6):
        append_row(path, make_row("minilm-l6", "prefix", seed, 0.0, status="failed",
                                  error=f"{refusal} (traceback in /tmp/logs/x.log)"))
    write_reports(results_dir, tmp_path / "out")
    page = (tmp_path / "out" / "sizes-mr.md").read_text()
    assert "Failed runs (3), by reason:" in page
    assert f"- {refusal}: minilm-l6 prefix seed 5, minilm-l6 prefix seed 6" in page
    assert "- boom: minilm-l6 prefix seed 4" in page and "traceback in" not in page


def test_a_backbone_where_every_run_failed_is_left_out_of_the_plots(results_dir) -> None:
    from bench.report.figures import figures

    path = results_dir / "runs.csv"
    append_row(path, make_row("mpnet-base", "prefix", 0, 0.0, status="failed", error="refused"))
    table = aggregate(load_results(results_dir))
    assert "mpnet-base" in set(table["backbone"])
    bars = figures(table, "t")["throughput"]
    assert [ax.get_title().split(" (")[0] for ax in bars.axes] == ["minilm-l3", "minilm-l6"]
    assert figures(table[table["backbone"] == "mpnet-base"], "t") == {}


def test_bf16_rows_get_their_own_section_and_a_comparison_with_fp32(tmp_path) -> None:
    path = tmp_path / "results" / "runs.csv"
    for seed, acc in enumerate([0.80, 0.82, 0.84]):
        append_row(path, make_row("minilm-l6", "finetune", seed, acc))
        hparams = json.dumps({"lr": 0.01, "method": "finetune", "precision": "bf16"})
        append_row(path, make_row("minilm-l6", "finetune", seed, acc + 0.005, hparams=hparams,
                                  run_id=f"bf16-{seed}", train_samples_per_s=75.0 + seed))
    write_reports(path.parent, tmp_path / "reports")
    page = (tmp_path / "reports" / "sizes-mr.md").read_text()
    assert "## Budget `default` on `cpu` in `bf16`" in page
    comparison = page.split("## `bf16` against `fp32`, budget `default` on `cpu`")[1]
    row = next(line for line in comparison.splitlines() if line.startswith("| minilm-l6"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells == ["minilm-l6", "finetune", "82.0 ± 2.0", "82.5 ± 2.0", "+0.5", "within seed noise", "1.49",
                     "3 / 3"]


def test_the_bf16_speed_ratio_is_never_taken_across_cpus(tmp_path) -> None:
    path = tmp_path / "results" / "runs.csv"
    for seed, acc in enumerate([0.80, 0.82]):
        append_row(path, make_row("minilm-l6", "finetune", seed, acc, cpu="AMD EPYC"))
        hparams = json.dumps({"lr": 0.01, "method": "finetune", "precision": "bf16"})
        append_row(path, make_row("minilm-l6", "finetune", seed, acc, hparams=hparams, run_id=f"bf16-{seed}",
                                  cpu="Intel Xeon"))
    write_reports(path.parent, tmp_path / "reports")
    page = (tmp_path / "reports" / "sizes-mr.md").read_text()
    assert "– (timed on different CPUs)" in page.split("## `bf16` against `fp32`")[1]
