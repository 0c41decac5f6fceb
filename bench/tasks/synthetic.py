"""Generated sentences whose label is the sentiment-word class that dominates: for tests and CI, and the
random backbones' vocabulary (``SYNTHETIC_WORDS``)."""

from __future__ import annotations

import random

from bench.tasks.spec import SPLIT_SEED, Source, TaskData
from bench.tasks.splits import _stratified

DESCRIPTION = "generated sentences, label = dominant sentiment-word class (tests only)"


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
    return TaskData("synthetic", DESCRIPTION, 2, train, select, eval_split)


SOURCE = Source("synthetic", DESCRIPTION, lambda data_dir: _load_synthetic())
