"""Tasks and batching: split sizes and determinism, SST-2 from a GLUE directory, validation of task files
and split sizes, bucketed batches."""

from __future__ import annotations

import pytest

from bench.execute.data import BucketBatchSampler, SortedBatchSampler, collate
from bench.tasks import TaskError, check_sizes, load_task, read_mr_csv, resolve_task


def test_mr_splits_match_the_protocol() -> None:
    task = load_task("mr")
    assert (len(task.train), len(task.select), len(task.eval)) == (6464, 1000, 1066)
    for split in (task.select, task.eval):
        assert abs(sum(split.labels) / len(split) - 0.5) < 0.01  # stratified
    seen = set(task.train.texts) | set(task.select.texts)
    overlap = [t for t in task.eval.texts if t in seen]
    assert len(overlap) < 10  # MR has a handful of duplicate sentences, no split leakage beyond them
    again = load_task("mr")
    assert again.eval.texts == task.eval.texts and again.train.texts[:50] == task.train.texts[:50]


def test_sst2_from_a_glue_directory(tmp_path) -> None:
    train = "sentence\tlabel\n" + "".join(f"sentence number {i} \t{i % 2}\n" for i in range(1200))
    (tmp_path / "train.tsv").write_text(train)
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\na fine film \t1\na dull one \t0\n")
    task = load_task("sst2", str(tmp_path))
    assert (len(task.train), len(task.select), len(task.eval)) == (200, 1000, 2)
    assert task.eval.texts == ("a fine film", "a dull one") and task.eval.labels == (1, 0)
    chosen, note = resolve_task("auto", str(tmp_path))
    assert chosen.name == "sst2" and "sst2" in note


def test_sst2_missing_is_an_error_and_auto_falls_back(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("BENCH_SST2_DIR", raising=False)
    with pytest.raises(TaskError, match="--data-dir"):
        load_task("sst2")
    with pytest.raises(TaskError, match="needs train.tsv and dev.tsv"):
        load_task("sst2", str(tmp_path / "nowhere"))
    task, note = resolve_task("auto")
    assert task.name == "mr" and note.startswith("task auto -> mr (SST-2 unavailable")


GOOD_TRAIN = "sentence\tlabel\n" + "".join(f"sentence number {i} \t{i % 2}\n" for i in range(1200))
GOOD_DEV = "sentence\tlabel\na fine film \t1\na dull one \t0\n"


def _sst2_error(tmp_path, train: str | bytes = GOOD_TRAIN, dev: str | bytes = GOOD_DEV) -> str:
    for name, text in (("train.tsv", train), ("dev.tsv", dev)):
        (tmp_path / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(TaskError) as caught:
        load_task("sst2", str(tmp_path))
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_sst2_wrong_columns_name_the_found_and_needed_ones(tmp_path) -> None:
    message = _sst2_error(tmp_path, train="text\tpolarity\na fine film\t1\n")
    assert message == (f"{tmp_path / 'train.tsv'} line 1: the header lacks sentence, label; found: text, polarity; "
                       "needed: sentence, label")


def test_sst2_non_numeric_label_names_the_file_and_line(tmp_path) -> None:
    train = GOOD_TRAIN.replace("sentence number 15 \t1", "sentence number 15 \tpos")
    message = _sst2_error(tmp_path, train=train)
    assert message == f"{tmp_path / 'train.tsv'} line 17: label 'pos' is not an integer; accepted: 0, 1"


def test_sst2_eval_labels_outside_the_classes_are_all_reported(tmp_path) -> None:
    dev = "sentence\tlabel\na fine film\t1\nodd\t2\na dull one\t0\nodder\t-1\n"
    message = _sst2_error(tmp_path, dev=dev)
    assert message == (f"{tmp_path / 'dev.tsv'} line 3: label 2 outside the task's classes; "
                       "line 5: label -1 outside the task's classes; accepted: 0, 1")
    many = _sst2_error(tmp_path, train=GOOD_TRAIN.replace("\t1\n", "\tx\n"), dev=GOOD_DEV)
    assert "line 11: label 'x' is not an integer; and 595 more; accepted: 0, 1" in many
    assert many.count("is not an integer") == 5


def test_sst2_empty_sentences_are_rejected(tmp_path) -> None:
    train = "sentence\tlabel\n" + "".join(f"{'words' if i % 2 else '  '}\t{i % 2}\n" for i in range(1200))
    message = _sst2_error(tmp_path, train=train)
    assert message.startswith(f"{tmp_path / 'train.tsv'}: 600 examples with an empty 'sentence' "
                              "(lines 2, 4, 6, 8, 10, and 595 more)")


def test_sst2_splits_too_small_name_the_file_and_the_size_needed(tmp_path) -> None:
    train = "sentence\tlabel\n" + "".join(f"sentence {i}\t{i % 2}\n" for i in range(500))
    message = _sst2_error(tmp_path, train=train)
    assert message == (f"{tmp_path / 'train.tsv'}: 500 examples (class 0: 250, class 1: 250), too few for the "
                       "1,000-example select split plus a train split with every class; needed: at least 1,002")
    one_class = _sst2_error(tmp_path, dev="sentence\tlabel\na\t1\nb\t1\n")
    assert one_class.startswith(f"{tmp_path / 'dev.tsv'}: the eval split has no example of class 0")
    skewed = "sentence\tlabel\n" + "".join(f"sentence {i}\t{int(i > 0)}\n" for i in range(1200))
    assert "the train split cut from them has no example of class 0" in _sst2_error(tmp_path, train=skewed)


def test_sst2_non_utf8_bytes_name_the_line(tmp_path) -> None:
    message = _sst2_error(tmp_path, dev=b"sentence\tlabel\na fine film\t1\nna\xefve\t0\n")
    assert message.startswith(f"{tmp_path / 'dev.tsv'} line 3: byte 0xef (byte 3 of the line) is not UTF-8")


def test_mr_reader_reads_and_validates_a_csv(tmp_path) -> None:
    path = tmp_path / "reviews.csv"
    path.write_text('text,label,source\n"a good, ""fine"" film",1,rotten_tomatoes\nlong review,7,imdb\n'
                    '"dull\nand long",0,rotten_tomatoes\n')
    assert read_mr_csv(path) == (['a good, "fine" film', "dull\nand long"], [1, 0])  # imdb rows are not read
    path.write_text('text,label,source\nfine,1,rotten_tomatoes\n"two\nlines",neg,rotten_tomatoes\n'
                    '  ,0,rotten_tomatoes\n')
    with pytest.raises(TaskError) as caught:
        read_mr_csv(path)
    assert str(caught.value) == (f"{path} line 3: label 'neg' is not an integer; accepted: 0, 1; 1 example with "
                                 "an empty 'text' (line 5); accepted: text with at least one non-space character")
    path.write_text("text,label\nfine,1\n")
    with pytest.raises(TaskError, match="line 1: the header lacks source; found: text, label"):
        read_mr_csv(path)


def test_check_sizes_flags_capped_splits_too_small_or_missing_a_class() -> None:
    task = load_task("synthetic")
    assert check_sizes(task, None, None) == [] and check_sizes(task, 10**6, 50) == []
    problems = check_sizes(task, 1, 0)
    assert problems == [
        "task synthetic: the train split (the first 1 of 800 examples) has 1 example; "
        "needed: at least 2 examples with every class (0, 1)",
        "task synthetic: the select split (the first 0 of 200 examples) has 0 examples; "
        "needed: at least 2 examples with every class (0, 1)",
    ]


def test_unknown_task_lists_the_accepted_ones() -> None:
    with pytest.raises(TaskError, match="accepted: sst2, mr, synthetic, or auto"):
        load_task("imdb")


def test_bucketed_batches_cover_every_example_once_per_epoch() -> None:
    lengths = [(i * 37) % 50 + 1 for i in range(1000)]
    sampler = BucketBatchSampler(lengths, 32, seed=3, bucket_batches=5)
    first, second = list(sampler), list(sampler)
    for epoch in (first, second):
        assert sorted(i for b in epoch for i in b) == list(range(1000))
    assert first != second  # a new order each epoch
    assert first == list(BucketBatchSampler(lengths, 32, seed=3, bucket_batches=5))  # seeded
    padded = sum(len(b) * max(lengths[i] for i in b) for b in first)
    plain = BucketBatchSampler(lengths, 32, seed=3, bucketing=False)
    padded_random = sum(len(b) * max(lengths[i] for i in b) for b in plain)
    assert padded < 0.75 * padded_random  # bucketing removes most of the padding


def test_eval_batches_are_sorted_by_length() -> None:
    lengths = [5, 1, 4, 2, 3]
    batches = list(SortedBatchSampler(lengths, 2))
    assert batches == [[1, 3], [4, 2], [0]]


def test_collate_right_pads() -> None:
    out = collate(pad_id=0)([([2, 5, 3], 1), ([2, 3], 0)])
    assert out["input_ids"].tolist() == [[2, 5, 3], [2, 3, 0]]
    assert out["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert out["target"].tolist() == [1, 0]


def test_a_task_from_a_new_corpus_is_one_file(tmp_path) -> None:
    """A copy of the package with one new module in ``bench/tasks/``: the registry lists it and loads it,
    validated and split by the shared protocol, with no other file edited."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for folder in ("bench", "methods", "grids"):
        shutil.copytree(root / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "bench" / "tasks" / "tiny.py").write_text(
        "from bench.tasks.spec import Source, TaskData\n"
        "from bench.tasks.splits import _carve\n\n"
        "def _load(data_dir):\n"
        "    texts, labels = [f'sentence {i}' for i in range(40)], [i % 2 for i in range(40)]\n"
        "    eval_split, select, train = _carve('tiny', texts, labels, [('eval', 10), ('select', 10)], 'train', 2)\n"
        "    return TaskData('tiny', 'forty made-up sentences', 2, train, select, eval_split)\n\n"
        "SOURCE = Source('tiny', 'forty made-up sentences', _load)\n")
    probe = ("import bench.tasks as t; d = t.load_task('tiny'); "
             "print(list(t.TASKS), len(d.train), len(d.select), len(d.eval))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["['sst2',", "'mr',", "'synthetic',", "'tiny']", "20", "10", "10"]
