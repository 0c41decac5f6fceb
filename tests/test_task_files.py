"""A user's task as a TOML file: read with ``datasets`` in every accepted format, validated with every
problem listed, split by the shared protocol, named in rows by its file name, and part of the run's identity
by its content."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.config.grid_files import GRIDS
from bench.config.grids import BUDGETS, narrow
from bench.plan import RunSpec
from bench.record.store import read_rows
from bench.tasks import TaskError, load_task, task_identity, task_name
from bench.tasks.files import read_task_file

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["negative", "neutral", "positive"]
WORDS = {"negative": "awful dull grim", "neutral": "the film was", "positive": "great lovely warm"}


def reviews(n: int = 120) -> list[dict]:
    return [{"review": f"{WORDS[LABELS[i % 3]]} scene {i}", "stars": LABELS[i % 3],
             "source": "shop" if i % 4 else "web"} for i in range(n)]


def write_csv(path: Path, rows: list[dict]) -> Path:
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def task_file(folder: Path, body: str, name: str = "my-task") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(body, encoding="utf-8")
    return path


CSV_TASK = '''description = "reviews, three classes"
data = "reviews.csv"
text = "review"
label = "stars"
labels = ["negative", "neutral", "positive"]
eval_size = 24
select_size = 24
'''


def test_a_users_csv_with_string_labels_runs_with_no_code_edit(tmp_path) -> None:
    """``--task my-task.toml`` over a CSV with string labels: the run trains, its row names the task by its
    file name and records three classes' split sizes."""
    write_csv(tmp_path / "reviews.csv", reviews())
    path = task_file(tmp_path, CSV_TASK)
    results = tmp_path / "out" / "runs.csv"
    run = subprocess.run([sys.executable, "-m", "bench", "--grid", "smoke", "--task", str(path), "--backbones",
                          "random-bert-tiny", "--methods", "finetune", "--results", str(results), "--quiet"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    (row,) = read_rows(results)
    assert row["task"] == "my-task" and row["status"] in ("ok", "collapsed")
    assert (int(row["n_train"]), int(row["n_select"]), int(row["n_eval"])) == (72, 24, 24)
    assert "task: " in run.stdout


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet", "arrow"])
def test_every_format_reads_the_same_task_from_split_files(tmp_path, fmt) -> None:
    import datasets

    rows = reviews(90)
    parts = {"train": rows[:50], "select": rows[50:70], "eval": rows[70:]}
    for split, part in parts.items():
        table = datasets.Dataset.from_list(part)
        if fmt == "csv":
            table.to_csv(str(tmp_path / f"{split}.csv"), index=False)
        elif fmt == "tsv":
            table.to_csv(str(tmp_path / f"{split}.tsv"), index=False, sep="\t")
        elif fmt == "jsonl":
            table.to_json(str(tmp_path / f"{split}.jsonl"))
        elif fmt == "parquet":
            table.to_parquet(str(tmp_path / f"{split}.parquet"))
        else:
            table.save_to_disk(str(tmp_path / split))
    name = (lambda s: s) if fmt == "arrow" else (lambda s: f"{s}.{fmt}")
    path = task_file(tmp_path, f'train = "{name("train")}"\nselect = "{name("select")}"\neval = "{name("eval")}"\n'
                               'text = "review"\nlabel = "stars"\nlabels = ["negative", "neutral", "positive"]\n')
    task = load_task(str(path))
    assert (len(task.train), len(task.select), len(task.eval), task.num_labels) == (50, 20, 20, 3)
    assert task.eval.texts[0] == rows[70]["review"] and task.eval.labels[0] == LABELS.index(rows[70]["stars"])


def test_where_keeps_only_the_rows_it_names(tmp_path) -> None:
    write_csv(tmp_path / "reviews.csv", reviews(240))
    path = task_file(tmp_path, CSV_TASK + '[where]\nsource = "shop"\n')
    task = load_task(str(path))
    assert len(task.train) + len(task.select) + len(task.eval) == 180  # three rows in four are from the shop


def test_a_bad_task_file_lists_every_problem_at_once(tmp_path) -> None:
    path = task_file(tmp_path, 'data = "missing.csv"\ntrain = "t.csv"\ntext = ""\nformat = "xlsx"\ncolour = 1\n'
                               'labels = ["a"]\neval_size = 1\n')
    with pytest.raises(TaskError) as caught:
        load_task(str(path))
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "nothing was run" in message
    for expected in ("colour: unknown key", "text: must be a column name", "label: missing",
                     "give one file as data, or the splits as files", "missing.csv does not exist",
                     "format: 'xlsx' is not known; accepted: csv, tsv, jsonl, parquet, arrow",
                     "labels: must be a list of at least two distinct strings", "eval_size: must be an integer >= 2"):
        assert expected in message, expected


def test_bad_data_is_named_by_row_with_what_is_accepted(tmp_path) -> None:
    rows = reviews()
    rows[3]["stars"], rows[7]["stars"], rows[10]["review"] = "meh", "5", "  "
    write_csv(tmp_path / "reviews.csv", rows)
    with pytest.raises(TaskError) as caught:
        load_task(str(task_file(tmp_path, CSV_TASK)))
    message = str(caught.value)
    assert "row 4: label 'meh'" in message and "row 8: label '5'" in message
    assert "accepted labels: negative, neutral, positive" in message
    assert "empty 'review' (row 11)" in message
    with pytest.raises(TaskError, match=r"no column 'stars'.*the file has 'review', 'rating', 'source'"):
        write_csv(tmp_path / "reviews.csv", [{"review": r["review"], "rating": r["stars"], "source": r["source"]}
                                             for r in reviews()])
        load_task(str(task_file(tmp_path, CSV_TASK)))


def test_a_split_too_small_is_refused_with_its_size(tmp_path) -> None:
    write_csv(tmp_path / "reviews.csv", reviews(30))
    with pytest.raises(TaskError, match="too few for the 24-example eval split"):
        load_task(str(task_file(tmp_path, CSV_TASK)))


def test_the_task_files_content_is_part_of_the_runs_identity(tmp_path) -> None:
    """Same content in another folder: the same run_id; a changed data row or task file: another one. Rows
    name the task by its file name, and a registered task's identity is its name alone (committed run_ids)."""
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        write_csv(tmp_path / folder / "reviews.csv", reviews())
        task_file(tmp_path / folder, CSV_TASK)

    def rid(folder: str) -> str:
        grid = narrow(GRIDS["smoke"], task=str(tmp_path / folder / "my-task.toml"))
        spec = RunSpec(grid.name, grid.task, "random-bert-tiny", grid.variants[0], 0, BUDGETS["smoke"])
        return spec.run_id

    assert rid("a") == rid("b")
    assert task_name(str(tmp_path / "a" / "my-task.toml")) == "my-task"
    changed = reviews()
    changed[0]["review"] = "something else entirely"
    write_csv(tmp_path / "b" / "reviews.csv", changed)
    assert rid("a") != rid("b")
    write_csv(tmp_path / "b" / "reviews.csv", reviews())
    assert rid("a") == rid("b")
    task_file(tmp_path / "b", CSV_TASK.replace("select_size = 24", "select_size = 25"))
    assert rid("a") != rid("b")
    assert task_identity("mr") == {"task": "mr"}


def test_a_task_file_is_read_as_data(tmp_path, runs_code) -> None:
    """TOML holds no code and the packaged readers run none: a task file pointing at a pickle is refused by
    its format, and the marker a pickle's code would create never appears."""
    import pickle

    marker = tmp_path / "ran"
    (tmp_path / "data.pkl").write_bytes(pickle.dumps(runs_code(marker)))
    with pytest.raises(TaskError, match="cannot tell the format"):
        read_task_file(task_file(tmp_path, 'data = "data.pkl"\ntext = "t"\nlabel = "l"\nnum_labels = 2\n'))
    with pytest.raises(TaskError):
        load_task(str(task_file(tmp_path, 'data = "data.pkl"\nformat = "parquet"\ntext = "t"\nlabel = "l"\n'
                                           'num_labels = 2\n')))
    assert not marker.exists()


def test_a_grid_file_names_a_task_file_relative_to_itself(tmp_path) -> None:
    from bench.config.grid_files import get_grid

    (tmp_path / "g").mkdir()
    write_csv(tmp_path / "g" / "reviews.csv", reviews())
    task_file(tmp_path / "g", CSV_TASK)
    grid_path = tmp_path / "g" / "mine.toml"
    grid_path.write_text('backbones = ["random-bert-tiny"]\ntask = "my-task.toml"\nbudget = "smoke"\n'
                         '[methods.finetune]\n')
    grid = get_grid(str(grid_path))
    assert grid.task == str((tmp_path / "g" / "my-task.toml").resolve())
    assert len(load_task(grid.task).eval) == 24


def test_a_save_to_disk_folder_rewritten_in_place_is_a_new_identity(tmp_path) -> None:
    """The digest follows each file inside a data folder, so a folder rewritten in place within one process
    (its own size and time may stay) is seen as changed."""
    import shutil

    import datasets

    rows = reviews(90)
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "data"))
    path = task_file(tmp_path, CSV_TASK.replace('"reviews.csv"', '"data"'))
    before = task_identity(str(path))
    rows[0]["review"] = "a different first review"
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "again"))
    for member in (tmp_path / "again").iterdir():
        shutil.copy(member, tmp_path / "data" / member.name)
    assert task_identity(str(path)) != before and task_identity(str(path))["task"] == "my-task"
