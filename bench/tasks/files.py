"""A user's task as a file: a TOML task file names its data, columns, labels and splits, and the data is
read with ``datasets`` (CSV, TSV, JSON Lines, Parquet, or a folder written by ``save_to_disk``), then
validated and split by the shared protocol before anything trains.

A task file (paths are relative to the task file's folder)::

    description = "product reviews, three classes"
    data = "reviews.csv"              # one file: eval and select are carved from it, seeded and stratified
    # or the splits as files: train = "train.csv", eval = "test.csv" (select carved from train), and
    # optionally select = "dev.csv"
    format = "csv"                    # csv, tsv, jsonl, parquet, arrow; default: from the file's extension
    text = "review"                   # the text column
    label = "stars"                   # the label column
    labels = ["negative", "neutral", "positive"]   # string labels, in class order (class 0 first)
    # or num_labels = 3 for integer labels 0 .. 2
    eval_size = 1000                  # carved from `data` (default 1000)
    select_size = 1000                # carved from the training rows (default 1000)
    [where]                           # keep only the rows whose column holds this value
    source = "imdb"

Every problem of the file (unknown keys, wrong types, missing files, an unknown format) is listed at
once, then every problem of the data (a missing column, with the columns there are; a label outside
``labels``, an empty text, by row; a split too small or missing a class). Rows are numbered from 1, the
first data row after any header. The task's name is the file's name without ``.toml``; its identity
(``identity``) is that name and a digest of the task file and its data files, so a changed file is a
different run. Nothing in a task file runs: it is TOML, and ``datasets`` reads the data with its
packaged readers (no loading script, no remote code).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.file_kinds import read_toml, special_kind
from bench.tasks.reading import _fail, _not_utf8, _plural, _some, _validated
from bench.tasks.spec import SELECT_SIZE, TaskData, TaskError
from bench.tasks.splits import _carve, _whole

SPLIT_KEYS = ("data", "train", "select", "eval")
FORMATS = ("csv", "tsv", "jsonl", "parquet", "arrow")
EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
KEYS = {"description": "a string", "data": "a file path", "train": "a file path", "select": "a file path",
        "eval": "a file path", "format": f"one of {', '.join(FORMATS)}", "text": "a column name",
        "label": "a column name", "labels": "a list of at least two distinct strings, class 0 first",
        "num_labels": "an integer >= 2", "eval_size": "an integer >= 2", "select_size": "an integer >= 2",
        "where": "a table of column = value"}
EVAL_SIZE = 1000


def is_task_file(name: str) -> bool:
    """Whether ``--task name`` (or a grid's ``task``) names a task file rather than a registered task."""
    return name.endswith(".toml")


@dataclass(frozen=True)
class TaskFile:
    """A parsed, checked task file."""

    path: Path
    description: str
    files: dict[str, Path]  # by split key: data, or train / eval (/ select)
    format: str
    text: str
    label: str
    labels: tuple[str, ...] | None  # string labels in class order; None for integer labels
    num_labels: int
    eval_size: int = EVAL_SIZE
    select_size: int = SELECT_SIZE
    where: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name.removesuffix(".toml")


def _int_at_least(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _problems(data: dict[str, Any], folder: Path) -> list[str]:
    """Every problem of a parsed task file, each as ``key: what is wrong; accepted: ...``."""
    problems = [f"{key}: unknown key; accepted: {', '.join(KEYS)}" for key in data if key not in KEYS]
    for key in ("description", "text", "label", "format", *SPLIT_KEYS):
        if key in data and not (isinstance(data[key], str) and data[key].strip()):
            problems.append(f"{key}: must be {KEYS[key]}")
    for key in ("text", "label"):
        if key not in data:
            problems.append(f"{key}: missing; accepted: {KEYS[key]}")
    given = [key for key in SPLIT_KEYS if key in data]
    if "data" in data and len(given) > 1:
        problems.append(f"data and {', '.join(k for k in given if k != 'data')}: give one file as data, or the "
                        "splits as files (train and eval, optionally select), not both")
    elif "data" not in data and not {"train", "eval"} <= set(given):
        problems.append("data: missing; accepted: data = one file (eval and select are carved from it), or train "
                        "and eval files (optionally select)")
    for key in given:
        if isinstance(data[key], str) and data[key].strip():
            path = folder / data[key]
            kind = special_kind(path)
            if kind:
                problems.append(f"{key}: {path} is {kind}; accepted: a data file or a save_to_disk folder")
            elif not path.exists():
                problems.append(f"{key}: {path} does not exist")
    if "format" in data and data["format"] not in FORMATS:
        problems.append(f"format: {data['format']!r} is not known; accepted: {', '.join(FORMATS)}")
    elif "format" not in data:
        for key in given:
            if isinstance(data[key], str) and _format_of(folder / data[key]) is None:
                problems.append(f"{key}: cannot tell the format of {data[key]!r} from its name; accepted: a name "
                                f"ending in {', '.join(EXTENSIONS)}, a save_to_disk folder, or format = ...")
    labels = data.get("labels")
    good_labels = (isinstance(labels, list) and len(labels) >= 2 and all(isinstance(v, str) and v for v in labels)
                   and len(set(labels)) == len(labels))
    if labels is not None and not good_labels:
        problems.append(f"labels: must be {KEYS['labels']}, got {labels!r}")
    if labels is None and "num_labels" not in data:
        problems.append("labels: missing; accepted: labels = [...] for string labels, or num_labels = N for "
                        "integer labels 0 .. N-1")
    if good_labels and "num_labels" in data and data["num_labels"] != len(labels):
        problems.append(f"num_labels: {data['num_labels']!r} disagrees with the {len(labels)} labels; give one of them")
    for key, low in (("num_labels", 2), ("eval_size", 2), ("select_size", 2)):
        if key in data and not _int_at_least(data[key], low):
            problems.append(f"{key}: must be {KEYS[key]}, got {data[key]!r}")
    where = data.get("where", {})
    if not isinstance(where, dict) or not all(isinstance(v, (str, int, float, bool)) for v in where.values()):
        problems.append(f"where: must be {KEYS['where']} (values: strings or numbers)")
    return problems


def _format_of(path: Path) -> str | None:
    if path.is_dir():
        return "arrow"
    return EXTENSIONS.get(path.suffix.lower())


def read_task_file(path: Path | str) -> TaskFile:
    """The task file at ``path``, checked; TaskError listing every problem, naming the file."""
    path = Path(path)
    if not special_kind(path) and not path.is_file():
        raise TaskError(f"task file {path} does not exist; accepted: a .toml task file, or a registered task")
    data = read_toml(path, "task file", "a .toml task file", TaskError)
    folder = path.parent
    problems = _problems(data, folder)
    if problems:
        raise TaskError(f"task file {path} has {_plural(len(problems), 'problem')}, nothing was run: "
                        + "; ".join(problems))
    files = {key: folder / data[key] for key in SPLIT_KEYS if key in data}
    labels = tuple(data["labels"]) if "labels" in data else None
    return TaskFile(path, data.get("description", f"task file {path.name}"), files,
                    data.get("format") or _format_of(next(iter(files.values()))), data["text"], data["label"],
                    labels, len(labels) if labels else data["num_labels"], data.get("eval_size", EVAL_SIZE),
                    data.get("select_size", SELECT_SIZE), dict(data.get("where", {})))


def _read_table(path: Path, fmt: str) -> dict[str, list]:
    """The columns of one data file (or save_to_disk folder), read by ``datasets``' packaged readers."""
    import datasets

    datasets.utils.logging.disable_progress_bar()
    datasets.utils.logging.set_verbosity_error()
    try:
        if fmt == "arrow":
            loaded = datasets.load_from_disk(str(path), keep_in_memory=True)
            if isinstance(loaded, datasets.DatasetDict):
                raise TaskError(f"{path}: a save_to_disk folder of several splits ({', '.join(loaded)}); accepted: "
                                "one split's folder per key (data, or train / eval / select)")
            table = loaded
        else:
            builder, options = {"csv": ("csv", {}), "tsv": ("csv", {"delimiter": "\t", "quoting": 3}),
                                "jsonl": ("json", {}), "parquet": ("parquet", {})}[fmt]
            table = datasets.load_dataset(builder, data_files=str(path), split="train", keep_in_memory=True,
                                          **options)
    except TaskError:
        raise
    except UnicodeDecodeError:
        raise TaskError(_not_utf8(path)) from None
    except Exception as exc:  # whatever the reader raises, the file is what is wrong
        text = " ".join(str(exc).split())[:300]
        raise TaskError(f"{path}: cannot be read as {fmt} ({type(exc).__name__}: {text})") from None
    return table.to_dict()


def _examples(task: TaskFile, key: str) -> tuple[list[str], list[int]]:
    """One data file's texts and integer labels, every problem of it listed in one TaskError."""
    path = task.files[key]
    columns = _read_table(path, task.format)
    missing = [c for c in (task.text, task.label, *task.where) if c not in columns]
    if missing:
        raise TaskError(f"{path}: no column {', '.join(map(repr, missing))}; the file has "
                        f"{', '.join(map(repr, columns)) or 'no columns'}; fix: text / label / where in {task.path}")
    rows = range(len(columns[task.label]))
    kept = [i for i in rows if all(columns[c][i] == v for c, v in task.where.items())]
    if task.labels is None:
        records = [(i + 1, _text(columns[task.text][i]), columns[task.label][i]) for i in kept]
        return _validated(str(path), records, task.num_labels, task.text, unit="row")
    index = {name: c for c, name in enumerate(task.labels)}
    bad = [f"row {i + 1}: label {columns[task.label][i]!r}" for i in kept if columns[task.label][i] not in index]
    records = [(i + 1, _text(columns[task.text][i]), index.get(columns[task.label][i], 0)) for i in kept]
    try:
        texts, labels = _validated(str(path), records, task.num_labels, task.text, unit="row")
    except TaskError as exc:
        if not bad:
            raise
        raise TaskError(f"{exc}; {_some(bad, '; ')}; accepted labels: {', '.join(task.labels)}") from None
    if bad:
        raise _fail(str(path), [f"{_some(bad, '; ')}: not among the task's labels; accepted: "
                                f"{', '.join(task.labels)}"], "row")
    return texts, labels


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def load_task_file(path: Path | str) -> TaskData:
    """The task a task file describes, read, validated and split (seeded and stratified where carved)."""
    task = read_task_file(path)
    n = task.num_labels
    if "data" in task.files:
        texts, labels = _examples(task, "data")
        eval_split, select, train = _carve(str(task.files["data"]), texts, labels,
                                           [("eval", task.eval_size), ("select", task.select_size)], "train", n)
    else:
        texts, labels = _examples(task, "train")
        if "select" in task.files:
            train = _whole(str(task.files["train"]), "train", texts, labels, n)
            select = _whole(str(task.files["select"]), "select", *_examples(task, "select"), n)
        else:
            select, train = _carve(str(task.files["train"]), texts, labels, [("select", task.select_size)], "train", n)
        eval_split = _whole(str(task.files["eval"]), "eval", *_examples(task, "eval"), n)
    return TaskData(task.name, task.description, n, train, select, eval_split)


def _members(file: Path) -> list[Path]:
    """The files a data path holds: itself, or every file of a save_to_disk folder, in name order."""
    return sorted(p for p in file.rglob("*") if p.is_file()) if file.is_dir() else [file]


@functools.lru_cache(maxsize=64)
def _digest(stamps: tuple[tuple[str, str, int, int], ...]) -> str:
    """sha256 over ``(label, path, size, mtime)`` stamps' files: each file's label and bytes, in order. The
    stamps are the cache key, so a file rewritten (new size or time) is read again."""
    digest = hashlib.sha256()
    for label, name, _, _ in stamps:
        digest.update(f"\0{label}\0".encode())
        with open(name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def identity(path: str) -> dict[str, str]:
    """What a task file adds to a run's identity: its name and a digest of the task file and of every data
    file it names (each file of a save_to_disk folder too), read again whenever one's size or time changes."""
    task = read_task_file(path)
    labelled = [("task file", task.path)] + [(f"{key}/{member.relative_to(file.parent)}", member)
                                            for key, file in sorted(task.files.items()) for member in _members(file)]
    stamps = tuple((label, str(file), file.stat().st_size, file.stat().st_mtime_ns) for label, file in labelled)
    return {"task": task.name, "task_digest": _digest(stamps)}
