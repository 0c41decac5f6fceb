"""The split protocol: ``select`` (and ``eval`` where a corpus has none) carved from the training data,
stratified and seeded so splits never depend on the run seed; every split checked for size and classes,
and ``check_sizes`` for a budget's caps."""

from __future__ import annotations

import random

from bench.tasks.reading import MIN_SPLIT, _accepted, _plural
from bench.tasks.spec import SPLIT_SEED, Split, TaskData, TaskError


def _quotas(size: int, counts: dict[int, int], total: int) -> dict[int, int]:
    """Split ``size`` over the classes in proportion to ``counts``, summing to ``size`` exactly
    (largest remainder; where plain rounding already sums to ``size`` the two agree)."""
    quota = {c: size * n // total for c, n in counts.items()}
    by_remainder = sorted(counts, key=lambda c: (-(size * counts[c] % total), c))
    for c in by_remainder[:size - sum(quota.values())]:
        quota[c] += 1
    return quota


def _stratified(texts: list[str], labels: list[int], sizes: list[int], seed: int) -> list[Split]:
    """Shuffle per class with ``seed`` and cut consecutive stratified splits of the given sizes;
    whatever is left becomes the last split. A class too small for its share leaves a split short:
    callers check the result (``_carve``)."""
    rng = random.Random(seed)
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(y, []).append(i)
    for idx in by_class.values():
        rng.shuffle(idx)
    total = len(labels)
    splits, taken = [], {c: 0 for c in by_class}
    for size in sizes + [None]:
        quota = {} if size is None else _quotas(size, {c: len(idx) for c, idx in by_class.items()}, total)
        chosen = []
        for c, idx in sorted(by_class.items()):
            n = len(idx) - taken[c] if size is None else quota[c]
            chosen += idx[taken[c]:taken[c] + n]
            taken[c] += n
        rng.shuffle(chosen)
        splits.append(Split(tuple(texts[i] for i in chosen), tuple(labels[i] for i in chosen)))
    return splits


def _class_counts(labels: tuple[int, ...] | list[int], num_labels: int) -> str:
    return ", ".join(f"class {c}: {labels.count(c):,}" for c in range(num_labels))


def _split_problem(split: Split, num_labels: int) -> str | None:
    """Why a split cannot be trained, selected or scored on: too few examples or a class missing."""
    if len(split) < MIN_SPLIT:
        return f"has {_plural(len(split), 'example')}"
    missing = [str(c) for c in range(num_labels) if c not in split.labels]
    if missing:
        return f"has no example of class {', '.join(missing)}"
    return None


def _carve(source: str, texts: list[str], labels: list[int], carved: list[tuple[str, int]], rest: str,
           num_labels: int) -> list[Split]:
    """Cut the stratified ``carved`` splits (name, exact size) from ``source``'s examples, the rest
    becoming split ``rest``; raises TaskError naming ``source`` and its size unless every split reaches
    its size and holds every class."""
    sizes = [size for _, size in carved]
    need = sum(sizes) + max(MIN_SPLIT, num_labels)
    counts = _class_counts(labels, num_labels)
    if len(labels) < need:
        wanted = " and ".join(f"the {size:,}-example {name} split" for name, size in carved)
        raise TaskError(f"{source}: {_plural(len(labels), 'example')} ({counts}), too few for {wanted} "
                        f"plus a {rest} split with every class; needed: at least {need:,}")
    splits = _stratified(texts, labels, sizes, SPLIT_SEED)
    for (name, want), split in zip(carved + [(rest, 0)], splits, strict=True):
        problem = f"has {len(split):,} of its {want:,} examples" if len(split) < want else None
        problem = problem or _split_problem(split, num_labels)
        if problem:
            raise TaskError(f"{source}: {_plural(len(labels), 'example')} ({counts}); the {name} split cut from "
                            f"them {problem}; needed: every class ({_accepted(num_labels)}) in every split")
    return splits


def _whole(source: str, name: str, texts: list[str], labels: list[int], num_labels: int) -> Split:
    """All of ``source`` as split ``name``, in file order; raises TaskError unless it holds every class."""
    split = Split(tuple(texts), tuple(labels))
    problem = _split_problem(split, num_labels)
    if problem:
        raise TaskError(f"{source}: the {name} split {problem} ({_class_counts(labels, num_labels)}); needed: "
                        f"at least {max(MIN_SPLIT, num_labels)} examples with every class ({_accepted(num_labels)})")
    return split


def check_sizes(task: TaskData, train_cap: int | None, select_cap: int | None) -> list[str]:
    """Problems with the splits a budget would use: each of train (its first ``train_cap``), select (its
    first ``select_cap``) and eval needs at least two examples and every class. A cap above a split's
    size is no problem: a cap takes the first N, so it then takes the whole split."""
    need = f"at least {max(MIN_SPLIT, task.num_labels)} examples with every class ({_accepted(task.num_labels)})"
    problems = []
    for name, split, cap in (("train", task.train, train_cap), ("select", task.select, select_cap),
                             ("eval", task.eval, None)):
        used = split.head(cap)
        problem = _split_problem(used, task.num_labels)
        if problem:
            scope = f"the first {len(used):,} of {len(split):,}" if len(used) < len(split) else f"all {len(split):,}"
            problems.append(f"task {task.name}: the {name} split ({scope} examples) {problem}; needed: {need}")
    return problems
