"""Guards over the committed results: every row's run_id is what its own columns give, computed with
hashlib and json alone (no harness code), so no restructuring can silently change what a run is."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IDENTITY_VERSION = 1  # bench.IDENTITY_VERSION when these rows were written


def independent_run_id(row: dict[str, str]) -> str:
    identity = {"grid": row["grid"], "task": row["task"], "backbone": row["backbone"], "method": row["method"],
                "seed": int(row["seed"]), "budget": row["budget"], "hparams": json.loads(row["hparams"]),
                "device": row["device"].split(":")[0], "schema_version": IDENTITY_VERSION}
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def test_every_committed_run_id_is_what_its_columns_give() -> None:
    with (ROOT / "results" / "runs.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) >= 221
    wrong = [(row["run_id"], independent_run_id(row)) for row in rows if independent_run_id(row) != row["run_id"]]
    assert wrong == []


def test_the_harness_computes_the_same_run_id() -> None:
    import bench
    from bench.record.schema import run_id

    assert bench.IDENTITY_VERSION == IDENTITY_VERSION
    row = {"grid": "g", "task": "mr", "backbone": "b", "method": "m", "seed": "3", "budget": "default",
           "hparams": '{"lr": 0.01}', "device": "cpu"}
    identity = {**{k: row[k] for k in ("grid", "task", "backbone", "method", "budget", "device")}, "seed": 3,
                "hparams": {"lr": 0.01}, "schema_version": IDENTITY_VERSION}
    assert run_id(identity) == independent_run_id(row)
