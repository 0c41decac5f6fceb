"""Result rows as a table, the one way the report and ``compare`` load and filter them.

* ``as_frame(rows)``: rows from ``bench.results`` (damaged records, values outside their column's domain
  included, already skipped) as a DataFrame with numeric columns typed, where a later row with the same
  ``run_id`` (a ``--rerun``) supersedes the earlier one (the CSV keeps both as history).
* ``clean_speed(frame)``: the rows whose speed was measured on a quiet machine.
* ``speed_cpu(frame)``: the one machine kind whose runs give a set of rows its speeds: speeds measured
  on different CPUs, or different GPUs, are never pooled. A row's kind (the derived ``machine``
  column, ``bench.results.machine_of``) is its GPU's name when it ran on one, else its CPU's name with the
  CPU's speed features where the row records them (schema v4). ``precision`` (fp32 or bf16) is derived
  from ``hparams``; the report keeps precisions apart like devices.
"""

from __future__ import annotations

import json

import pandas as pd

from bench.results import COLUMNS, NUMBER_COLUMNS, machine_of

# Typed as numbers: the number columns of the schema (``bench.results.DOMAINS``), except the version (read
# as text: "1") and ``segments`` (a count the report does not use).
NUMERIC = [c for c in NUMBER_COLUMNS if c not in ("schema_version", "segments")]


def as_frame(rows: list[dict[str, str]]) -> pd.DataFrame:
    """The rows as a DataFrame, numeric columns typed, superseded rows dropped."""
    if not rows:
        return pd.DataFrame(columns=[*COLUMNS, "machine", "precision"])
    data = pd.DataFrame(rows, columns=COLUMNS, dtype=str)
    data = data.drop_duplicates(subset="run_id", keep="last").reset_index(drop=True)
    for column in NUMERIC:
        data[column] = pd.to_numeric(data[column], errors="coerce")
    places = data[["accelerator", "cpu", "cpu_features"]].fillna("").to_dict("records")
    data["machine"] = [machine_of(place) for place in places]
    data["precision"] = [_precision(text) for text in data["hparams"]]
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
