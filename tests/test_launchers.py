"""Launchers as strategies over one driver: options go with their launcher, and a launcher is one file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("argv, message", [
    (["--launcher", "serial", "--retries", "2"], "--retries goes with --launcher ray, not --launcher serial"),
    (["--ray-address", "auto", "--retries", "1"], "--ray-address and --retries go with --launcher ray"),
    (["--launcher", "ray", "--checkpoint-every", "5"], "--checkpoint-every goes with --launcher serial"),
    (["--checkpoint-every", "-1"], "--checkpoint-every must be a number of minutes >= 0"),
    (["--launcher", "ray", "--retries", "-1"], "--retries must be 0 or more"),
])
def test_an_option_of_another_launcher_or_a_bad_value_is_refused_before_any_work(argv, message, tmp_path, capsys):
    results = tmp_path / "runs.csv"
    assert main(["--grid", "smoke", "--results", str(results), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not results.exists() and not (tmp_path / "logs").exists()


DRY = '''"""A launcher that runs nothing: it prints the plan (what a new launcher needs: this one file)."""

from bench.launchers import Launcher, Option
from bench.launchers.driver import Driver, run_label


def run(grid, results, settings, options, say=print):
    driver = Driver(grid, results, settings, "dry", say)
    driver.open_log()
    specs = driver.plan(progress=False)
    for index, spec in enumerate(specs, 1):
        label = run_label(index, len(specs), spec)
        if not driver.finished(spec.run_id, label):
            say(f"{options['prefix']}{label} {spec.run_id}")
    driver.close()
    say(driver.outcome.summary())
    return driver.outcome


LAUNCHER = Launcher("dry", "print the plan, run nothing",
                    (Option("--dry-prefix", "put before each line", str, "would run "),),
                    lambda values: {"prefix": values["dry_prefix"]}, run)
'''


def test_a_new_launcher_is_one_file_and_the_cli_offers_it_with_its_options(tmp_path: Path) -> None:
    """A copy of the package with one new file in ``bench/launchers/``: ``--launcher dry`` and its option work,
    the driver's checks and summary come with it, and the serial launcher refuses its option."""
    for package in ("bench", "methods", "grids"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "bench" / "launchers" / "dry.py").write_text(DRY)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    command = [sys.executable, "-m", "bench", "--grid", "smoke", "--results", str(tmp_path / "out" / "runs.csv")]
    dry = subprocess.run([*command, "--launcher", "dry", "--dry-prefix", "plan: "], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert dry.returncode == 0, dry.stderr
    planned = [line for line in dry.stdout.splitlines() if line.startswith("plan: [")]
    assert len(planned) == 6 and "grid smoke: 0 of 6 run(s) measured now" in dry.stdout
    assert not (tmp_path / "out" / "runs.csv").exists()  # it recorded nothing
    refused = subprocess.run([*command, "--dry-prefix", "x"], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=300)
    assert refused.returncode == 2 and "--dry-prefix goes with --launcher dry" in refused.stderr
