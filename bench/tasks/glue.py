"""GLUE SST-2 from a local ``glue_data`` folder (``--data-dir`` or ``BENCH_SST2_DIR``) or the ``datasets``
cache (the Hub itself only with BENCH_ONLINE=1): 67,349 train, the 872 validation sentences as eval."""

from __future__ import annotations

import os
from pathlib import Path

from bench.tasks.reading import _validated, read_labelled
from bench.tasks.spec import SELECT_SIZE, Source, TaskData, TaskError
from bench.tasks.splits import _carve, _whole

DESCRIPTION = "GLUE SST-2 (binary sentiment, movie-review phrases); eval = the 872 validation sentences"


def _read_glue_tsv(path: Path) -> tuple[list[str], list[int]]:
    texts, labels = read_labelled(path, "sentence", 2)
    return [text.strip() for text in texts], labels


def _load_sst2(data_dir: str | None) -> TaskData:
    data_dir = data_dir or os.environ.get("BENCH_SST2_DIR")
    if data_dir:
        root = Path(data_dir)
        if not (root / "train.tsv").exists() or not (root / "dev.tsv").exists():
            raise TaskError(f"SST-2 directory '{root}' needs train.tsv and dev.tsv (GLUE format)")
        train_source, eval_source = str(root / "train.tsv"), str(root / "dev.tsv")
        train_texts, train_labels = _read_glue_tsv(root / "train.tsv")
        eval_texts, eval_labels = _read_glue_tsv(root / "dev.tsv")
    else:
        if os.environ.get("BENCH_ONLINE") != "1":
            os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import datasets

            datasets.logging.set_verbosity_error()
            glue = datasets.load_dataset("glue", "sst2")
        except Exception as exc:  # datasets raises many types for "not cached / unreachable"
            raise TaskError(
                "SST-2 cannot be loaded: it is not in the datasets cache and the Hub is not used "
                f"offline ({type(exc).__name__}); fix: --data-dir DIR with GLUE train.tsv/dev.tsv, "
                "or BENCH_ONLINE=1 where the Hub is reachable, or --task mr") from None
        train_source, eval_source = "datasets glue/sst2 train", "datasets glue/sst2 validation"
        loaded = []
        for source, part in ((train_source, glue["train"]), (eval_source, glue["validation"])):
            pairs = zip(part["sentence"], part["label"], strict=True)
            records = [(i, text, label) for i, (text, label) in enumerate(pairs)]  # numbered like the dataset, from 0
            loaded.append(_validated(source, records, 2, "sentence", unit="example"))
        (train_texts, train_labels), (eval_texts, eval_labels) = loaded
    select, train = _carve(train_source, train_texts, train_labels, [("select", SELECT_SIZE)], "train", 2)
    eval_split = _whole(eval_source, "eval", eval_texts, eval_labels, 2)  # GLUE order: nothing to shuffle
    return TaskData("sst2", DESCRIPTION, 2, train, select, eval_split)


SOURCE = Source("sst2", DESCRIPTION, _load_sst2)
