"""Loading the rows a report is made from: every CSV under a results folder, checked so that a typo in
``--results-dir`` cannot turn into an empty report that replaces the real one."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.record.store import read_rows
from bench.report.frame import as_frame
from bench.report.install import ReportError


def load_results(results_dir: Path) -> pd.DataFrame:
    """Every row of every ``*.csv`` under ``results_dir`` (files in name order), as ``bench.report.frame.as_frame``."""
    return as_frame([row for path in sorted(Path(results_dir).glob("**/*.csv")) for row in read_rows(path)])


def load_checked(results_dir: Path) -> pd.DataFrame:
    """``load_results``, refusing a results folder that is missing, holds no CSV or no valid row (a typo in
    ``--results-dir`` must not turn into an empty report that replaces the real ones)."""
    results_dir = Path(results_dir)
    hint = "pass --results-dir with the folder holding the results CSVs"
    if not results_dir.exists():
        raise ReportError(f"results folder '{results_dir}' does not exist; {hint}")
    if not results_dir.is_dir():
        raise ReportError(f"results folder '{results_dir}' is not a folder; {hint}")
    if not any(results_dir.glob("**/*.csv")):
        raise ReportError(f"results folder '{results_dir}' holds no *.csv files, and an empty report would "
                          f"replace the existing one; {hint}")
    rows = load_results(results_dir)
    if rows.empty:
        raise ReportError(f"results folder '{results_dir}' holds no valid row (its CSVs are empty, header-only or "
                          f"damaged throughout), and an empty report would replace the existing one; nothing was "
                          f"changed; {hint}")
    return rows
