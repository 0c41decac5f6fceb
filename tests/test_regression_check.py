"""The regression check's verdicts: ratios past tolerance and changed accuracy fail, noise passes."""

from __future__ import annotations

from benchmarks.check import TOLERANCE, compare, platform_key, ratios


def baseline(platform: dict | None = None) -> dict:
    return {"platform": platform or platform_key(),
            "ratios": {"train/tiny/prompt": 1.2, "eval/tiny/prompt": 1.5},
            "accuracy": {"tiny/prompt": {"acc": 0.75, "acc_last": 0.75, "train_loss": 0.5, "status": "ok"}}}


def guard(acc: float = 0.75, loss: float = 0.5) -> dict:
    return {"tiny/prompt": {"acc": acc, "acc_last": acc, "train_loss": loss, "status": "ok"}}


def test_ratios_divide_by_the_plain_reference() -> None:
    measured = ratios({"train/tiny": {"plain": 2.0, "prompt": 3.0, "prefix": 1.0}})
    assert measured == {"train/tiny/prefix": 0.5, "train/tiny/prompt": 1.5}


def test_noise_within_tolerance_passes() -> None:
    wobble = 1 + TOLERANCE * 0.8
    assert compare(baseline(), {"train/tiny/prompt": 1.2 * wobble, "eval/tiny/prompt": 1.5 / wobble}, guard()) == []


def test_a_doubled_step_fails_with_a_clear_message() -> None:
    problems = compare(baseline(), {"train/tiny/prompt": 2.4, "eval/tiny/prompt": 1.5}, guard())
    assert len(problems) == 1 and "train/tiny/prompt" in problems[0] and "2.00x" in problems[0]


def test_accuracy_must_be_identical_on_the_same_platform() -> None:
    problems = compare(baseline(), {"train/tiny/prompt": 1.2, "eval/tiny/prompt": 1.5}, guard(loss=0.5000001))
    assert problems and "must be identical" in problems[0]


def test_accuracy_tolerance_on_another_platform() -> None:
    other = {**platform_key(), "cpu": "some other CPU"}
    close = compare(baseline(other), {"train/tiny/prompt": 1.2, "eval/tiny/prompt": 1.5}, guard(0.76, 0.52))
    assert close == []
    far = compare(baseline(other), {"train/tiny/prompt": 1.2, "eval/tiny/prompt": 1.5}, guard(0.70, 0.5))
    assert far and "past tolerance" in far[0]


def test_a_missing_workload_is_a_problem() -> None:
    assert any("missing" in p for p in compare(baseline(), {"train/tiny/prompt": 1.2}, guard()))
