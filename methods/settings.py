"""Typed settings: what a run is told, as frozen dataclasses that validate themselves (no torch here).

Two kinds are kept apart:

* ``TrainingSettings``, one object shared by every method: learning rate, epochs, weight decay,
  warm-up, optimizer, schedule, batch size, maximum length, and the shared head's dropout and whether
  it trains. A method may declare its own defaults for these (prompt tuning wants a larger learning
  rate than fine-tuning); the budget supplies batch size and maximum length and caps the epochs.
* a method's own settings (prompt length, initialisation, projection, ...): one ``Settings`` subclass
  per method, declared with the method in its folder (``methods/<name>/__init__.py``); a method
  backed by PEFT subclasses ``PeftSettings``, which says how to build its PEFT config.

Each field is declared with ``setting(default, check, help)``; ``check`` returns None when a value is
accepted, else what is accepted, so every problem of a grid can be listed at once before anything runs.
Grid files and ``--set`` address both kinds with one flat ``method.key`` name, so a method's settings
may not reuse a training setting's name (``methods.registry`` refuses that).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, ClassVar, get_type_hints

Check = Callable[[Any], "str | None"]  # None when the value is accepted, else what is accepted


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def positive_int(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    return None if ok else "an integer >= 1"


def positive_number(value: Any) -> str | None:
    return None if _is_number(value) and value > 0 else "a finite number > 0"


def non_negative_number(value: Any) -> str | None:
    return None if _is_number(value) and value >= 0 else "a finite number >= 0"


def fraction(value: Any) -> str | None:
    return None if _is_number(value) and 0 <= value < 1 else "a number in [0, 1)"


def boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def one_of(*accepted: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in accepted else f"one of {', '.join(map(repr, accepted))}"

    return check


def setting(default: Any, check: Check, help: str, added_later: bool = False) -> Any:
    """A settings field: its default, what it accepts, and one line for ``python -m bench list``.
    ``added_later``: a setting that did not exist when rows were first recorded; at its default it is
    left out of ``as_dict`` (and so of ``hparams`` and the run_id), so those rows keep their identity.
    A row without it ran at the default."""
    return dataclasses.field(default=default, metadata={"check": check, "help": help, "added_later": added_later})


@dataclasses.dataclass(frozen=True)
class Settings:
    """Base of every settings object: validation, and conversion to and from plain values."""

    kind: ClassVar[str] = "setting"

    @classmethod
    def fields(cls) -> dict[str, dataclasses.Field]:
        return {f.name: f for f in dataclasses.fields(cls)}

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {name: f.default for name, f in cls.fields().items()}

    @classmethod
    def problems(cls, values: dict[str, Any], where: str) -> list[str]:
        """What is wrong with each of ``values`` that names one of this class's fields, as
        ``where.key=value: must be ...``; keys of other classes are left to them."""
        fields = cls.fields()
        out = []
        for key in sorted(set(values) & set(fields)):
            accepted = fields[key].metadata["check"](values[key])
            if accepted:
                out.append(f"{where}.{key}={values[key]!r}: must be {accepted}")
        return out

    @classmethod
    def build(cls, values: dict[str, Any]) -> Settings:
        """An instance from the known keys of ``values`` over the defaults; a float setting given a
        whole number (TOML ``lr = 1``) becomes a float. Raises ValueError listing every problem."""
        fields = cls.fields()
        problems = cls.problems(values, cls.kind)
        if problems:
            raise ValueError("; ".join(problems))
        hints = get_type_hints(cls)
        typed = {k: float(v) if hints[k] is float and isinstance(v, int) else v
                 for k, v in values.items() if k in fields}
        return cls(**typed)

    def as_dict(self) -> dict[str, Any]:
        """Every value, but settings ``added_later`` only when they differ from their default."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if not (f.metadata["added_later"] and getattr(self, f.name) == f.default)}


# Learning-rate schedules the shared loop knows, by the name rows record.
LINEAR_DECAY = "linear warmup then linear decay"
CONSTANT = "linear warmup then constant"
SCHEDULES = (LINEAR_DECAY, CONSTANT)
OPTIMIZERS = ("AdamW", "Adam")
PRECISIONS = ("fp32", "bf16")  # torch.optim classes, called with (params, lr=, weight_decay=)


@dataclasses.dataclass(frozen=True)
class TrainingSettings(Settings):
    """How the shared loop trains, whatever the method. ``batch_size`` and ``max_len`` default to the
    budget's; ``epochs`` is capped by the budget's ``max_epochs``."""

    kind: ClassVar[str] = "training"

    lr: float = setting(5e-5, positive_number, "peak learning rate")
    epochs: int = setting(3, positive_int, "training epochs (the budget may cap them)")
    weight_decay: float = setting(0.01, non_negative_number, "decoupled weight decay (AdamW) or L2 (Adam)")
    warmup_ratio: float = setting(0.06, fraction, "share of the steps spent warming the lr up from ~0")
    optimizer: str = setting("AdamW", one_of(*OPTIMIZERS), "torch optimizer")
    schedule: str = setting(LINEAR_DECAY, one_of(*SCHEDULES), "learning-rate schedule after the warm-up")
    batch_size: int = setting(32, positive_int, "training batch size (default: the budget's)")
    max_len: int = setting(64, positive_int, "tokens kept per sentence (default: the budget's)")
    head_dropout: float = setting(0.1, fraction, "dropout before the shared classification head")
    train_head: bool = setting(True, boolean, "whether the shared head trains (false: frozen at random init)")
    precision: str = setting("fp32", one_of(*PRECISIONS), "fp32, or bf16: autocast to bfloat16 with fp32 weights "
                             "(where the hardware has bf16 units)", added_later=True)


@dataclasses.dataclass(frozen=True)
class NoSettings(Settings):
    """For a method with nothing of its own to set."""


@dataclasses.dataclass(frozen=True)
class PeftSettings(Settings):
    """Base of a PEFT-backed method's settings: the typed contract ``methods.peft_adapter.PeftAdapter``
    relies on. ``peft`` is imported only inside ``peft_config``, so declarations stay torch-free."""

    adds_positions: ClassVar[bool] = False  # prompt-learning methods prepend virtual positions to every sequence

    def peft_config(self, backbone: Any, family: Any) -> Any:
        """The PEFT config for ``backbone`` of ``family`` (``methods.families.Family``: its target modules)."""
        raise NotImplementedError

    def expected_trainable(self, backbone: Any, family: Any) -> int:
        """The closed-form count of what PEFT trains on ``backbone`` (the head aside)."""
        raise NotImplementedError


# Training-setting defaults shared by methods of one style (a method declares its own over these)
FROZEN_BACKBONE = {"lr": 1e-2, "epochs": 10, "weight_decay": 0.0}  # prompt-style: only a few vectors train
ADAPTER = {"lr": 1e-3, "epochs": 10, "weight_decay": 0.0}  # LoRA-style: a small update to a frozen backbone
