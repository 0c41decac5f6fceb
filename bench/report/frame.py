"""Result rows as a table, the one way the report and ``compare`` load and filter them.

* ``as_frame(rows)``: rows from ``bench.record.store`` (damaged records, values outside their column's domain
  included, already skipped) as a DataFrame with numeric columns typed, where a later row with the same
  ``run_id`` (a ``--rerun``) supersedes the earlier one (the CSV keeps both as history).
* ``clean_speed(frame)``: the rows whose speed was measured on a quiet machine.
* ``speed_cpu(frame)``: the one machine kind whose runs give a set of rows its speeds: speeds measured
  on different CPUs, or different GPUs, are never pooled. A row's kind (the derived ``machine``
  column, ``bench.record.provenance.machine_of``) is its GPU's name when it ran on one, else its CPU's name with the
  CPU's speed features where the row records them (schema v4). ``precision`` (fp32 or bf16) is derived
  from ``hparams``; the report keeps precisions apart like devices.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from bench.record.provenance import machine_of
from bench.record.schema import COLUMNS, NUMBER_COLUMNS

# Typed as numbers: the number columns of the schema (``bench.record.schema.DOMAINS``), except the version (read
# as text: "1") and ``segments`` (a count the report does not use).
NUMERIC = [c for c in NUMBER_COLUMNS if c not in ("schema_version", "segments")]


def as_frame(rows: list[dict[str, str]]) -> pd.DataFrame:
    """The rows as a DataFrame, numeric columns typed, superseded rows dropped."""
    if not rows:
        return pd.DataFrame(columns=[*COLUMNS, "machine", "precision"])
    columns = {column: [row[column] for row in rows] for column in COLUMNS}
    data = pd.DataFrame({column: pd.to_numeric(np.array(values, dtype=object), errors="coerce") if column in NUMERIC
                         else pd.Series(values, dtype=str) for column, values in columns.items()})
    data = data.drop_duplicates(subset="run_id", keep="last").reset_index(drop=True)
    places = data[["accelerator", "cpu", "cpu_features"]].fillna("")
    machines = np.empty(len(data), dtype=object)
    for place, positions in places.groupby(list(places.columns), sort=False).indices.items():
        machines[positions] = machine_of(dict(zip(places.columns, place, strict=True)))  # once per place
    data["machine"] = pd.Series(machines, dtype=str)
    data["precision"] = data["hparams"].map({text: _precision(text) for text in set(data["hparams"])})
    return data


def _precision(hparams: str) -> str:
    """A row's precision: fp32 unless its hparams say otherwise (rows from before the setting say nothing)."""
    try:
        return str(json.loads(hparams).get("precision", "fp32"))
    except (TypeError, ValueError, AttributeError):
        return "fp32"


def clean_speed(rows: pd.DataFrame) -> pd.Series:
    """Rows whose speed was measured on a quiet machine (rows from before the check count as quiet)."""
    return rows["speed_clean"] != "false"


def speed_cpu(rows: pd.DataFrame) -> str | None:
    """The CPU or GPU whose runs give the speeds: the one with the most ok runs measured on a quiet
    machine (ties: by name); None when there is none."""
    ok = rows[(rows["status"] == "ok") & clean_speed(rows)]
    if ok.empty:
        return None
    counts = ok["machine"].value_counts()
    return sorted(counts.index, key=lambda cpu: (-counts[cpu], cpu))[0]
