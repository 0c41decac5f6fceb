"""The sections under each budget's heading on a grid's page, in page order (``SECTIONS``).

Each section is a function from the ``Part`` of the page it is on (one budget, device and precision of
one grid and task: its rows and its aggregated table) to its markdown lines, empty when it has nothing
to say. A new section is one function and one entry in ``SECTIONS``, both here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.backbones import BACKBONES
from bench.report.aggregate import speed_source
from bench.report.figures import write_plots
from bench.report.notes import environment_lines, failed_lines, hparams_lines, reproduce_command
from bench.report.tables import main_table, verdicts


@dataclass(frozen=True)
class Part:
    """One table of a page: a grid and task's rows of one budget, device and precision."""

    grid: str
    task: str
    budget: str
    device: str
    precision: str
    rows: pd.DataFrame
    table: pd.DataFrame  # ``aggregate(rows)``
    out_dir: Path
    slug: str  # the stem of this part's plots


def heading_and_table(part: Part) -> list[str]:
    in_precision = "" if part.precision == "fp32" else f" in `{part.precision}`"
    return [f"## Budget `{part.budget}` on `{part.device}`{in_precision}", "", *verdicts(part.table), "",
            main_table(part.table), ""]


def failures(part: Part) -> list[str]:
    return failed_lines(part.rows)


def sweep_note(part: Part) -> list[str]:
    if not (part.table["tried"] > 1).any():
        return []
    return ["Swept settings: for each backbone and method, the combination with the best mean `select` "
            "accuracy over its ok seeds was chosen (`eval` takes no part in the choice); the row reports "
            "that combination's `eval` accuracy, speed and size. A winner at the end of the range it was "
            "chosen from is marked (lowest / highest tried): the best value may lie beyond it. All "
            "combinations tried are listed under the hyper-parameters below.", ""]


def task_note(part: Part) -> list[str]:
    if part.task != "mr":
        return []
    return ["Task: MR (Rotten Tomatoes sentences, 6,464 train / 1,000 select / 1,066 eval); "
            "SST-2 could not be loaded offline, so these are not SST-2 numbers."]


def backbone_note(part: Part) -> list[str]:
    sentence = [b for b in dict.fromkeys(part.table["backbone"]) if b in BACKBONES and BACKBONES[b].sentence_embedding]
    if not sentence:
        return []
    return [f"Backbones {', '.join(sentence)} are sentence-embedding fine-tunes (sentence-"
            "transformers), not raw MLM checkpoints. Every method classifies from the mean "
            "of the sentence's token states (no pooler)."]


def data_and_settings(part: Part) -> list[str]:
    rows = part.rows
    n_train = sorted({int(v) for v in rows["n_train"].dropna()})
    return ["", "Data per run: " + f"train {', '.join(f'{n:,}' for n in n_train) or '–'}, "
            f"select {', '.join(sorted({f'{int(v):,}' for v in rows['n_select'].dropna()})) or '–'}, "
            f"eval {', '.join(sorted({f'{int(v):,}' for v in rows['n_eval'].dropna()})) or '–'}.", "",
            "Hyper-parameters used:", ""] + hparams_lines(rows)


def environment(part: Part) -> list[str]:
    return ["", "Environment:", ""] + environment_lines(part.rows)


def reproduce(part: Part) -> list[str]:
    return ["", "Reproduce:", "", "```", reproduce_command(part.grid, part.task, part.budget, part.rows), "```", ""]


def plots(part: Part) -> list[str]:
    """The part's figures, written beside the page, each linked."""
    pngs = write_plots(part.table, part.out_dir / part.slug, f"{part.grid}/{part.task}/{part.budget}",
                       speed_source(part.rows))
    return [f"![{name}]({name})" for name in pngs] + [""]


SECTIONS: list[Callable[[Part], list[str]]] = [heading_and_table, failures, sweep_note, task_note, backbone_note,
                                               data_and_settings, environment, reproduce, plots]
