"""The results schema as one table, and what a row may hold.

``SCHEMA`` lists every column once: its name, its domain (``Domain``: accuracies in [0, 1], counts and
times finite and not negative, ``hparams`` a JSON object, a known status) and the schema version that
added it. The header (``COLUMNS``), every earlier header (``KNOWN_HEADERS``, read and migrated), the
domains (``DOMAINS``) and the report's numeric columns (``NUMBER_COLUMNS``) derive from it, so a new
column is one line here (and ``SCHEMA_VERSION`` beside it). ``row_problem`` is the one row check, applied
alike on write (``RowError``) and on read (a damaged record). ``run_id`` hashes what defines a run.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

STATUSES = ("ok", "failed", "collapsed")
FINISHED = ("ok", "collapsed")  # a run with one of these statuses is not run again


class SchemaError(RuntimeError):
    """A results file cannot be read, appended to or written as this schema; the message says why."""


class RowError(SchemaError, ValueError):
    """A row with a value outside its column's domain: refused on write (a ValueError, as other bad rows
    are), and a damaged record on read."""


# --- the domain of each column: what a row may hold, checked alike on write and on read -----------------
@dataclass(frozen=True)
class Domain:
    """The values a column may hold: a finite number within [low, high] (a whole one with ``integer``),
    one of ``choices``, or a JSON object; empty is allowed unless the column is required."""

    kind: str  # "number", "choice" or "json"
    low: float = 0.0
    high: float = math.inf
    integer: bool = False
    choices: tuple[str, ...] = ()

    def problem(self, text: str) -> str | None:
        """Why ``text`` (not empty) is outside the domain, or None."""
        if self.kind == "choice":
            return None if text in self.choices else f"is not one of {', '.join(self.choices)}"
        if self.kind == "json":
            try:
                return None if isinstance(json.loads(text), dict) else "is not a JSON object"
            except ValueError:
                return "is not valid JSON"
        try:
            value = float(text)
        except ValueError:
            return "is not a number"
        if not math.isfinite(value):
            return "is not a finite number"
        if self.integer and not value.is_integer():
            return "is not a whole number"
        if not self.low <= value <= self.high:
            return f"is outside [{self.low:g}, {self.high:g}]"
        return None


_FRACTION = Domain("number", high=1.0)  # accuracies and shares of the eval split
_COUNT = Domain("number", integer=True)
_AMOUNT = Domain("number")  # times, speeds, memory, a loss: finite and not negative
_FLAG = Domain("choice", choices=("true", "false"))
_TEXT = None  # any text (names, versions, times, an error message)


@dataclass(frozen=True)
class Column:
    """One column of the results file: its name, its domain (None: any text) and the schema version that
    added it."""

    name: str
    domain: Domain | None = _TEXT
    since: int = 1


# The schema as one table, in the file's column order. Adding a column is one line here (``since`` the
# new version) and the version below, beside the code that measures it: the header, the older headers
# this code reads and migrates, the domains checked on write and read, and the report's numeric columns
# derive from it.
SCHEMA_VERSION = 5  # the results file's version, in every row: the newest column's ``since`` (checked below)
SCHEMA: tuple[Column, ...] = (
    # identity
    Column("schema_version", Domain("number", low=1, high=SCHEMA_VERSION, integer=True)), Column("run_id"),
    Column("created_at"), Column("grid"), Column("task"), Column("backbone"), Column("method"),
    Column("seed", _COUNT), Column("budget"), Column("hparams", Domain("json")),
    # code
    Column("git_sha"), Column("git_dirty", _FLAG),
    # size
    Column("total_params", _COUNT), Column("trainable_params", _COUNT), Column("trainable_params_excl_head", _COUNT),
    Column("trainable_pct", Domain("number", high=100.0)),
    # accuracy
    Column("train_loss", _AMOUNT), Column("acc", _FRACTION), Column("acc_last", _FRACTION),
    Column("acc_select", _FRACTION), Column("best_epoch", _COUNT), Column("epochs", _COUNT),
    Column("majority_rate", _FRACTION), Column("pred_majority_share", _FRACTION),
    Column("n_train", _COUNT), Column("n_select", _COUNT), Column("n_eval", _COUNT),
    # speed
    Column("train_samples_per_s", _AMOUNT), Column("train_tokens_per_s", _AMOUNT),
    Column("train_flops_per_s", _AMOUNT), Column("matmul_peak_flops_per_s", _AMOUNT),
    Column("eval_samples_per_s", _AMOUNT), Column("train_s", _AMOUNT), Column("run_s", _AMOUNT),
    Column("peak_mem_mb", _AMOUNT), Column("peak_cuda_mem_mb", _AMOUNT),
    # speed: was the machine quiet while this run trained?
    Column("other_cpu_load", _AMOUNT, since=2), Column("speed_clean", _FLAG, since=2),
    # how many processes the training ran in: 1, or more when it resumed from epoch checkpoints
    Column("segments", Domain("number", low=1, integer=True), since=5),
    # place
    Column("device"), Column("threads", Domain("number", low=1, integer=True)), Column("torch"),
    Column("transformers"), Column("fastnlp"), Column("python"), Column("cpu"),
    # the CPU's speed-relevant instruction sets: CPUs sold under one name differ (bf16, AMX)
    Column("cpu_features", since=4),
    # where and how: the host, the GPU's name (empty on CPU), serial or ray
    Column("node", since=3), Column("accelerator", since=3), Column("launcher", since=3),
    # outcome
    Column("status", Domain("choice", choices=STATUSES)), Column("error"),
)
if max(column.since for column in SCHEMA) != SCHEMA_VERSION:
    raise RuntimeError(f"bench.record.schema: SCHEMA_VERSION is {SCHEMA_VERSION} but the newest column is since "
                       f"v{max(column.since for column in SCHEMA)}: a new column's since is the new version")
COLUMNS = [column.name for column in SCHEMA]
# Every header this code can read: the current one and the earlier versions (columns added later absent).
KNOWN_HEADERS = {version: [column.name for column in SCHEMA if column.since <= version]
                 for version in range(SCHEMA_VERSION, 0, -1)}
DOMAINS: dict[str, Domain] = {column.name: column.domain for column in SCHEMA if column.domain is not None}
NUMBER_COLUMNS = tuple(c for c in COLUMNS if c in DOMAINS and DOMAINS[c].kind == "number")
REQUIRED = ("run_id", "status")  # in every row
REQUIRED_WHEN_FINISHED = ("acc",)  # in every ok or collapsed row: what the report averages
CURRENT_COLUMNS = frozenset(COLUMNS)  # row_problem checks these columns; a header's others (none today) are not


def row_problem(values: dict[str, str]) -> str | None:
    """Why a row (its columns as written in the CSV) is outside the schema's domains, or None. Columns
    the row lacks (an earlier schema version) are not checked."""
    finished = values.get("status") in FINISHED
    for column in COLUMNS:
        if column not in values:
            continue
        text = values[column]
        if text == "":
            if column in REQUIRED or (finished and column in REQUIRED_WHEN_FINISHED):
                return f"{column} is empty" + (f" in a {values['status']} row" if column not in REQUIRED else "")
            continue
        domain = DOMAINS.get(column)
        why = domain.problem(text) if domain else None
        if why:
            return f"{column} '{text[:20]}' {why}"
    return None


def run_id(identity: dict[str, Any]) -> str:
    """A short stable hash of what defines a run."""
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


