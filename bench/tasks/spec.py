"""What a loaded task is: three fixed splits (``Split``) with their labels (``TaskData``), the one
error kind, and the fixed seed and size of the carved ``select`` split."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


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


SPLIT_SEED = 1234  # fixed: splits never depend on the run seed


SELECT_SIZE = 1000


@dataclass(frozen=True)
class Source:
    """A task's source: each module of ``bench.tasks`` that loads a task defines one as ``SOURCE``; the
    registry finds it, so a task from a new corpus is one file."""

    name: str
    description: str
    load: Callable[[str | None], TaskData]  # the data folder (``--data-dir``), for tasks that read one
