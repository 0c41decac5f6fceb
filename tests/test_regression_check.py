"""The regression check's verdicts, baseline file and history: slowdowns past the factor *and* significant
fail and name their workload, noise passes, accuracy changes fail as ACCURACY, other platforms' entries
are kept, history rows are whole."""

from __future__ import annotations

import csv
import json
import re
import threading

import pytest

from benchmarks import baseline as baseline_file
from benchmarks import history
from benchmarks.check import ALPHA, CROSS_FACTOR, FACTORS, compare_accuracy, compare_loop, step_ratios
from benchmarks.verdict import judge

FACTOR = FACTORS["train"]
BASE = [1.00, 1.01, 0.99, 1.02, 0.98, 1.00, 1.01, 0.99, 1.00, 1.02]
KEY = "loop/train/random-bert-small/prefix"


def test_a_clear_consistent_slowdown_is_a_regression() -> None:
    verdict = judge(BASE, [1.25, 1.24, 1.26, 1.27, 1.23], FACTOR, ALPHA)
    assert verdict.regression and verdict.change == pytest.approx(1.25, abs=0.01) and verdict.p_value < ALPHA


def test_a_small_shift_is_not_a_regression_even_when_significant() -> None:
    verdict = judge(BASE, [1.05, 1.06, 1.05, 1.06, 1.05], FACTOR, ALPHA)
    assert verdict.p_value < ALPHA and not verdict.regression


def test_a_large_median_from_scattered_samples_is_not_a_regression() -> None:
    # two wild samples pull the median up, but the ranks do not say "slower": noise, not a regression
    verdict = judge(BASE, [0.99, 1.30, 1.01, 1.40, 1.25], FACTOR, ALPHA)
    assert verdict.change > FACTOR and verdict.p_value >= ALPHA and not verdict.regression


def test_a_faster_run_is_never_a_regression() -> None:
    assert not judge(BASE, [0.7, 0.71, 0.69, 0.7, 0.72], FACTOR, ALPHA).regression


def test_too_few_samples_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 3 samples"):
        judge(BASE, [1.0, 1.1], FACTOR, ALPHA)


def test_compare_loop_names_the_slow_workload_and_writes_a_history_row_per_workload() -> None:
    other = "loop/eval/random-bert-small/prefix"
    lines = []
    problems, rows = compare_loop({KEY: BASE, other: BASE}, {KEY: [1.3] * 5, other: BASE[:5]}, same_cpu=True,
                                  say=lines.append)
    assert len(problems) == 1 and problems[0].startswith(f"SPEED {KEY}:") and "1.30x" in problems[0]
    assert [r["workload"] for r in rows] == [other, KEY] and [r["regression"] for r in rows] == [False, True]
    assert any("SPEED REGRESSION" in line and KEY in line for line in lines)


def test_each_phase_is_held_to_its_own_factor() -> None:
    eval_key = KEY.replace("/train/", "/eval/")
    between = [x * (FACTORS["train"] + FACTORS["eval"]) / 2 for x in BASE[:5]]
    problems, _ = compare_loop({KEY: BASE, eval_key: BASE}, {KEY: between, eval_key: between}, same_cpu=True,
                               say=lambda _: None)
    assert len(problems) == 1 and problems[0].startswith(f"SPEED {KEY}:")


def test_a_baseline_from_another_cpu_is_held_to_the_wider_factor() -> None:
    now = {KEY: [x * (max(FACTORS.values()) + CROSS_FACTOR) / 2 for x in BASE[:5]]}  # past both, within CROSS
    assert compare_loop({KEY: BASE}, now, same_cpu=True, say=lambda _: None)[0]
    assert not compare_loop({KEY: BASE}, now, same_cpu=False, say=lambda _: None)[0]


def test_a_workload_missing_from_the_run_is_a_problem() -> None:
    problems, _ = compare_loop({KEY: BASE}, {}, same_cpu=True, say=lambda _: None)
    assert problems == [f"SPEED {KEY}: missing from this run"]


def test_step_ratios_divide_by_the_plain_reference() -> None:
    measured = step_ratios({"train/tiny": {"plain": 2.0, "prompt": 3.0, "prefix": 1.0}})
    assert measured == {"train/tiny/prefix": 0.5, "train/tiny/prompt": 1.5}


def _guard(acc: float = 0.75, loss: float = 0.5) -> dict:
    return {"tiny/prompt": {"acc": acc, "acc_last": acc, "train_loss": loss, "status": "ok"}}


def test_accuracy_must_be_identical_on_the_same_platform() -> None:
    problems = compare_accuracy(_guard(), _guard(loss=0.5000001), exact=True, say=lambda _: None)
    assert problems and problems[0].startswith("ACCURACY") and "must be identical" in problems[0]


def test_accuracy_tolerance_on_another_platform() -> None:
    assert compare_accuracy(_guard(), _guard(0.76, 0.52), exact=False, say=lambda _: None) == []
    far = compare_accuracy(_guard(), _guard(0.70, 0.5), exact=False, say=lambda _: None)
    assert far and "past tolerance" in far[0]


def test_update_keeps_other_platforms_entries_and_unmeasured_parts(tmp_path) -> None:
    path = tmp_path / "baseline.json"
    amd = {"cpu": "AMD EPYC", "cpu_flags": "a", "machine": "x86_64", "torch": "2.13", "python": "3.11"}
    intel = {**amd, "cpu": "Intel Xeon", "cpu_flags": "b"}
    baseline_file.save([], amd, {"steps": {"s": 1.0}, "accuracy": {}}, path)
    baseline_file.save(baseline_file.load(path), intel, {"loop": {KEY: BASE}}, path)
    baseline_file.save(baseline_file.load(path), amd, {"loop": {KEY: [2.0] * 3}}, path)
    entries = baseline_file.load(path)
    assert len(entries) == 2
    mine, same = baseline_file.pick(entries, amd, "loop")
    assert same and mine["loop"][KEY] == [2.0] * 3 and mine["steps"] == {"s": 1.0}
    assert baseline_file.pick(entries, intel, "steps") == (mine, False)  # only AMD has steps: another CPU's
    unknown = {**amd, "cpu": "Some CPU"}
    assert baseline_file.pick(entries, unknown, "loop")[1] is False


@pytest.mark.parametrize("text, message", [(None, "no baseline"), ("{not json", "not readable JSON"),
                                           ('{"ratios": {}}', "not a version-2 baseline")])
def test_an_unusable_baseline_is_one_clear_error(tmp_path, text, message) -> None:
    path = tmp_path / "baseline.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(baseline_file.BaselineError, match=message):
        baseline_file.load(path)


def test_the_committed_baseline_loads_and_has_whole_loop_samples() -> None:
    entries = baseline_file.load()
    assert any("loop" in entry and all(len(s) >= 3 for s in entry["loop"].values()) for entry in entries)


def _history_row(commit: str, workload: str = KEY, ratio: float = 1.0) -> dict:
    return {"date": "2026-12-02T05:00:00Z", "commit": commit, "cpu": "Intel Xeon", "threads": 1, "repeats": 5,
            "workload": workload, "ratio": ratio, "baseline": 1.0, "change": ratio, "p_value": 0.5,
            "limit": FACTOR, "regression": False}


def test_history_appends_whole_rows_from_two_writers_at_once(tmp_path) -> None:
    path = tmp_path / "history.csv"
    writers = [threading.Thread(target=history.append, args=([_history_row(f"c{i}")] * 50, path)) for i in range(2)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 100 and all(set(r) == set(history.COLUMNS) and r["regression"] == "False" for r in rows)
    assert path.read_text().count("date,commit") == 1


def test_a_history_row_with_missing_columns_is_refused(tmp_path) -> None:
    row = _history_row("c0")
    del row["p_value"]
    with pytest.raises(ValueError, match="exactly the columns"):
        history.append([row], tmp_path / "history.csv")
    assert not (tmp_path / "history.csv").exists()


def test_the_speed_history_page_and_plot_render_identically(tmp_path) -> None:
    from bench.report.history import render_history

    path = tmp_path / "history.csv"
    history.append([_history_row("aaa"), _history_row("aaa", KEY.replace("train", "eval"))], path)
    history.append([{**_history_row("bbb", ratio=1.3), "regression": True}], path)
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    names, index_line = render_history(first, path)
    assert names == ["speed-history.md", "speed-history.png"] and "2 recorded checks" in index_line
    render_history(second, path)
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes()
    page = re.sub(r" +", " ", (first / "speed-history.md").read_text())
    assert f"| {KEY} | 2 | 1.000 | 1.300 |" in page and page.rstrip().endswith("(speed-history.png)")
    assert render_history(tmp_path, tmp_path / "absent.csv") == ([], "")


def test_baseline_json_is_sorted_and_stable(tmp_path) -> None:
    path = tmp_path / "baseline.json"
    here = {"cpu": "X", "cpu_flags": "f", "machine": "m", "torch": "t", "python": "p"}
    baseline_file.save([], here, {"loop": {KEY: BASE}}, path)
    text = path.read_text()
    baseline_file.save(baseline_file.load(path), here, {"loop": {KEY: BASE}}, path)
    assert path.read_text() == text and json.loads(text)["version"] == baseline_file.VERSION
