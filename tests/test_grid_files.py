"""Grids as files and --set overrides: built-in files load, a user's file runs, every problem of a bad
file is listed with its key path before anything runs, and overrides are typed and checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.__main__ import main
from bench.config.grid_files import GRIDS, GRIDS_DIR, apply_sets, get_grid, load_grid_file, parse_set
from bench.config.grids import GridError
from bench.record.store import read_rows

QUICK = ["--methods", "finetune", "--backbones", "random-bert-tiny", "--seeds", "0", "--threads", "1", "--quiet"]


def test_every_built_in_grid_is_a_file_that_loads() -> None:
    files = sorted(p.stem for p in GRIDS_DIR.glob("*.toml"))
    assert files == sorted(GRIDS) and {"sizes", "smoke", "tutorial-offline"} <= set(files)
    tutorial = GRIDS["tutorial-offline"]
    assert [v.name for v in tutorial.variants] == ["prompt-tutorial", "prompt"]
    assert tutorial.variants[0].method == "prompt" and tutorial.variants[0].overrides["train_head"] is False
    assert tutorial.reference == "prompt" and tutorial.budget == "full"
    assert get_grid("sizes") is GRIDS["sizes"]


def test_a_users_grid_file_runs_by_path(tmp_path, capsys) -> None:
    grid = tmp_path / "mine.toml"
    grid.write_text('description = "mine"\nbackbones = ["random-bert-tiny"]\nseeds = [0]\ntask = "synthetic"\n'
                    'budget = "smoke"\nreference = "finetune"\n[methods.finetune]\nlr = 2e-3\nepochs = 1\n')
    results = tmp_path / "runs.csv"
    assert main(["--grid", str(grid), *QUICK, "--results", str(results)]) == 0
    (row,) = read_rows(results)
    assert row["grid"] == "mine" and row["status"] == "ok"
    assert json.loads(row["hparams"])["lr"] == 2e-3 and row["epochs"] == "1"


def test_a_malformed_grid_file_lists_every_problem_with_its_key_path(tmp_path) -> None:
    grid = tmp_path / "bad.toml"
    grid.write_text('colour = "red"\nbackbones = ["gpt9"]\nseeds = [0, -1]\ntask = "imdb"\nbudget = "huge"\n'
                    'reference = "lora"\n[methods.finetune]\nlr = -1.0\ntypo = 3\n[methods.nope]\n'
                    '[methods.long]\nmethod = "prompt"\nprompt_len = 0\n')
    with pytest.raises(GridError) as error:
        load_grid_file(grid)
    message = str(error.value)
    for expected in ["colour: unknown key; accepted: description", "backbones: unknown backbone 'gpt9'",
                     "seeds: must be a non-empty list of integers >= 0", "task: unknown task 'imdb'; accepted: sst2",
                     "budget: unknown budget 'huge'; accepted: default",
                     "methods.finetune.lr=-1.0: must be a finite number > 0",
                     "methods.finetune: no setting ['typo']", "methods.nope.(the table's name): unknown method 'nope'",
                     "methods.long.prompt_len=0: must be an integer >= 1", "reference: 'lora' is not a method"]:
        assert expected in message
    assert "has 10 problem(s)" in message and "\n" not in message


@pytest.mark.parametrize("text, message", [
    ("backbones = [", "is not valid TOML"),
    ('backbones = ["random-bert-tiny"]\n', "methods: must hold at least one method table"),
])
def test_unreadable_or_empty_grid_files_are_one_line(tmp_path, text, message, capsys) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text(text)
    assert main(["--grid", str(grid), "--results", str(tmp_path / "runs.csv")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "runs.csv").exists()


def test_a_missing_grid_file_names_what_is_accepted(capsys) -> None:
    assert main(["--grid", "nowhere/mine.toml"]) == 2
    assert "grid file 'nowhere/mine.toml' does not exist; accepted: " in capsys.readouterr().err


def test_set_values_are_read_as_toml_else_as_words() -> None:
    assert parse_set("prefix.lr=3e-3") == ("prefix", "lr", 3e-3)
    assert parse_set("prompt.train_head=false") == ("prompt", "train_head", False)
    assert parse_set("prompt.prompt_len=20") == ("prompt", "prompt_len", 20)
    assert parse_set("prompt.init=normal") == ("prompt", "init", "normal")
    with pytest.raises(GridError, match="is not METHOD.KEY=VALUE"):
        parse_set("prefix.lr")
    grid = apply_sets(GRIDS["tutorial-offline"], ["prompt.prompt_len=8", "prompt-tutorial.lr=0.5"])
    assert [v.overrides.get("prompt_len") for v in grid.variants] == [8, 8]  # both variants are prompt
    assert [v.overrides.get("lr") for v in grid.variants] == [0.5, None]  # a label targets one variant
    with pytest.raises(GridError, match="has no method 'lora'; accepted: prompt-tutorial, prompt"):
        apply_sets(GRIDS["tutorial-offline"], ["lora.r=8"])


def test_set_overrides_run_and_are_checked(tmp_path, capsys) -> None:
    results = tmp_path / "runs.csv"
    assert main(["--grid", "smoke", *QUICK, "--set", "finetune.lr=2e-3", "--results", str(results)]) == 0
    assert json.loads(read_rows(results)[0]["hparams"])["lr"] == 2e-3
    capsys.readouterr()
    assert main(["--grid", "smoke", *QUICK, "--set", "finetune.lr=-1", "--set", "finetune.epochs=x",
                 "--results", str(tmp_path / "other.csv")]) == 2
    err = capsys.readouterr().err
    assert "finetune.epochs='x': must be an integer >= 1" in err
    assert "finetune.lr=-1: must be a finite number > 0" in err
    assert not (tmp_path / "other.csv").exists()


def test_a_list_value_is_a_sweep_over_every_combination(tmp_path) -> None:
    from bench.config.grid_files import expand_sweeps

    grid = tmp_path / "sweep.toml"
    grid.write_text('backbones = ["random-bert-tiny"]\ntask = "synthetic"\nbudget = "smoke"\n'
                    '[methods.prompt]\nlr = [1e-3, 3e-3]\nprompt_len = [4, 8, 16]\n[methods.finetune]\n')
    expanded = expand_sweeps(load_grid_file(grid))
    prompts = [v.overrides for v in expanded.variants if v.name == "prompt"]
    assert len(prompts) == 6 and {(o["lr"], o["prompt_len"]) for o in prompts} == {
        (lr, p) for lr in (1e-3, 3e-3) for p in (4, 8, 16)}
    assert [v.name for v in expanded.variants].count("finetune") == 1
    grid.write_text('backbones = ["random-bert-tiny"]\n[methods.prompt]\nlr = [1e-3, -1.0]\nprompt_len = []\n')
    with pytest.raises(GridError) as error:
        load_grid_file(grid)
    assert "methods.prompt.lr=-1.0: must be a finite number > 0" in str(error.value)
    assert "methods.prompt.prompt_len: an empty list sweeps nothing" in str(error.value)
    swept = expand_sweeps(apply_sets(GRIDS["smoke"], ["prefix.lr=[0.01, 0.03]"]))
    assert sorted(v.overrides["lr"] for v in swept.variants if v.name == "prefix") == [0.01, 0.03]


def test_the_report_picks_a_sweeps_winner_on_select_never_on_eval(tmp_path) -> None:
    from test_report import make_row

    from bench.record.store import append_row
    from bench.report.aggregate import aggregate
    from bench.report.load import load_results
    from bench.report.tables import main_table

    path = tmp_path / "runs.csv"
    # lr 0.001 is best on select but worst on eval; lr 0.01 the other way round
    for lr, select, acc in ((0.001, 0.80, 0.70), (0.01, 0.75, 0.85)):
        for seed in range(3):
            append_row(path, make_row("minilm-l6", "prompt", seed, acc + seed / 100, run_id=f"{lr}-{seed}",
                                      acc_select=select + seed / 100,
                                      hparams=json.dumps({"lr": lr, "method": "prompt", "epochs": 3})))
    table = aggregate(load_results(tmp_path))
    (line,) = table.itertuples()
    assert line.chosen == "lr=0.001" and line.tried == 2 and abs(line.acc_mean - 0.71) < 1e-9 and line.n_ok == 3
    assert "lr=0.001 (of 2)" in main_table(table)


def test_a_winner_at_the_end_of_its_range_is_marked(tmp_path) -> None:
    from test_report import make_row

    from bench.record.store import append_row
    from bench.report.aggregate import aggregate
    from bench.report.load import load_results

    path = tmp_path / "runs.csv"
    for lr, select in ((0.001, 0.70), (0.003, 0.72), (0.01, 0.75)):
        append_row(path, make_row("minilm-l6", "prompt", 0, 0.7, run_id=str(lr), acc_select=select,
                                  hparams=json.dumps({"lr": lr, "method": "prompt"})))
    (line,) = aggregate(load_results(tmp_path)).itertuples()
    assert line.chosen == "lr=0.01 (highest tried)" and line.tried == 3


def test_every_registry_answers_an_unknown_name_the_same_way() -> None:
    from bench.backbones import BACKBONES
    from bench.config.grid_files import GRIDS
    from bench.config.grids import BUDGETS
    from bench.registry import UnknownName
    from bench.tasks import TASKS
    from methods import METHODS

    for registry in (GRIDS, BUDGETS, METHODS, BACKBONES, TASKS):
        with pytest.raises(UnknownName) as error:
            registry["no-such-thing"]
        message = str(error.value)
        assert message.startswith(f"unknown {registry.kind} 'no-such-thing'; accepted: {', '.join(registry)}")
        assert "no-such-thing" not in registry and registry.get("no-such-thing") is None


def test_bench_list_imports_no_torch() -> None:
    import subprocess
    import sys

    code = ("import sys, io, contextlib\nfrom bench.__main__ import main\nout = io.StringIO()\n"
            "with contextlib.redirect_stdout(out):\n    main(['list'])\n"
            "assert 'torch' not in sys.modules, 'bench list imported torch'\nprint(out.getvalue())")
    listing = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for name in ("sizes", "default", "prompt_len", "minilm-l6", "mr", "schedule"):
        assert name in listing


def test_a_broken_built_in_grid_file_breaks_only_the_commands_that_use_it(tmp_path) -> None:
    """grids/*.toml are read when a command names one: with sizes.toml broken, ``report`` and ``migrate`` work
    (the report says once that it shows that grid without its reference) and ``--grid sizes`` is one line."""
    import os
    import shutil
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    for folder in ("bench", "methods", "grids"):
        shutil.copytree(root / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "grids" / "sizes.toml").write_text("backbones = [minilm-l3\n")  # a typo: not TOML
    results = tmp_path / "results"
    results.mkdir()
    rows = (root / "results" / "runs.csv").read_text().splitlines()
    sizes = [line for line in rows[1:] if ",sizes," in line][:3]
    assert sizes, "the committed rows hold sizes rows"
    (results / "runs.csv").write_text("\n".join([rows[0], *sizes]) + "\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}

    def bench(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bench", *argv], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)

    report = bench("report", "--results-dir", str(results), "--out", str(tmp_path / "reports"))
    assert report.returncode == 0, report.stderr
    assert report.stderr.count("sizes.toml is not valid TOML") == 1
    assert (tmp_path / "reports" / "README.md").is_file()
    migrate = bench("migrate", str(results / "runs.csv"))
    assert migrate.returncode == 0, migrate.stderr
    run = bench("--grid", "sizes", "--results", str(tmp_path / "other.csv"))
    assert run.returncode == 2 and "sizes.toml is not valid TOML" in run.stderr and run.stderr.count("\n") == 1
