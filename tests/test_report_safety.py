"""Reports never touch what they did not write: user files in the out folder are kept (and never
overwritten), stale generated pages go, a missing or empty results folder is refused, a failed install
leaves the old folder whole; ``compare`` refuses git refs that git could read as options."""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fake_rows import make_row

from bench.__main__ import main
from bench.record.schema import SchemaError
from bench.record.store import append_row
from bench.report import install as report_install
from bench.report.compare import read_source
from bench.report.install import ReportError
from bench.report.pages import check_reports, write_reports


def _results(folder: Path, grid: str) -> Path:
    for seed in (0, 1):
        append_row(folder / "runs.csv", make_row("minilm-l6", "finetune", seed, 0.8, grid=grid,
                                                 run_id=f"{grid}-{seed}"))
    return folder


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, Path]:
    """Two results folders (grid ``sizes``, grid ``other``) and a reports folder rendered from the first."""
    base = tmp_path_factory.mktemp("rendered")
    sizes, other = _results(base / "sizes", "sizes"), _results(base / "other", "other")
    write_reports(sizes, base / "reports")
    return {"sizes": sizes, "other": other, "reports": base / "reports"}


@pytest.fixture
def out(rendered, tmp_path) -> Path:
    """A fresh copy of the reports rendered from ``sizes``."""
    return Path(shutil.copytree(rendered["reports"], tmp_path / "reports"))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def no_temp_folders(*folders: Path) -> bool:
    return not [p for folder in folders for p in folder.iterdir() if report_install.TEMP_PREFIX in p.name]


def test_user_files_are_kept_and_stale_pages_removed(rendered, out) -> None:
    (out / "notes.txt").write_text("mine\n")
    written = write_reports(rendered["other"], out)
    names = {p.name for p in out.iterdir()}
    assert "other-mr.md" in names and "sizes-mr.md" not in names
    assert not any(n.startswith("sizes-mr") for n in names)  # its PNGs went with the page
    assert (out / "notes.txt").read_text() == "mine\n"
    assert sorted(p.name for p in written) == sorted(names - {"notes.txt"})
    assert "other-mr.md" in (out / ".generated").read_text().splitlines()
    assert no_temp_folders(out, out.parent)
    assert check_reports(rendered["other"], out) == 0  # notes.txt is not the harness's business


def test_a_file_the_harness_did_not_write_is_never_overwritten(rendered, tmp_path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    (out / "README.md").write_text("# My folder\n")
    before = snapshot(out)
    with pytest.raises(ReportError, match=r"refusing to overwrite '.*mine/README\.md'.*did not write it"):
        write_reports(rendered["sizes"], out)
    assert snapshot(out) == before and no_temp_folders(out, tmp_path)


def test_a_folder_without_manifest_is_updated_when_its_files_carry_the_marks(rendered, out) -> None:
    (out / ".generated").unlink()  # as committed before the manifest existed
    page = (out / "sizes-mr.md").read_text().replace("# Grid `sizes`", "# Grid `gone`")
    (out / "gone-mr.md").write_text(page)  # a stale page of an earlier render
    shutil.copy(out / "sizes-mr-default-cpu-throughput.png", out / "gone-mr-default-cpu-throughput.png")
    (out / "gone-mr-default-cpu-notes.png").write_text("not a plot of ours")
    write_reports(rendered["sizes"], out)
    names = {p.name for p in out.iterdir()}
    assert "gone-mr.md" not in names and "gone-mr-default-cpu-throughput.png" not in names
    assert "gone-mr-default-cpu-notes.png" in names and ".generated" in names
    (out / "README.md").write_text("# Reports\n\nmy own index\n")  # unmarked and a manifest exists
    (out / ".generated").unlink()
    with pytest.raises(ReportError, match="README.md"):
        write_reports(rendered["sizes"], out)


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_a_missing_or_empty_results_folder_is_refused(out, tmp_path, make) -> None:
    results = tmp_path / "typo"
    if make == "empty":
        results.mkdir()
        (results / "notes.txt").write_text("no csv here\n")
    before = snapshot(out)
    expected = "does not exist; pass --results-dir" if make == "missing" else "holds no \\*.csv files"
    with pytest.raises(ReportError, match=expected):
        write_reports(results, out)
    with pytest.raises(ReportError, match=expected):
        check_reports(results, out)
    assert snapshot(out) == before


@pytest.mark.parametrize(("fail_at", "name"), [(1, ".generated"), (4, "other-mr-default-cpu-acc-vs-trainable.png"),
                                                (10, "sizes-mr-default-cpu-acc-vs-trainable.png"), (13, ".generated")])
def test_a_failed_install_leaves_the_old_reports_whole(rendered, out, monkeypatch, fail_at, name) -> None:
    before = snapshot(out)
    real, calls = os.replace, []

    def flaky(src, dst) -> None:
        calls.append(dst)
        if len(calls) == fail_at:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        real(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(ReportError, match=re.escape(f"cannot write reports into '{out}': No space left on device")):
        write_reports(rendered["other"], out)
    assert Path(calls[fail_at - 1]).name == name  # the interim manifest, a new PNG, a stale PNG, the final manifest
    assert snapshot(out) == before and no_temp_folders(out, out.parent)


def test_an_unwritable_out_folder_is_one_line(rendered, tmp_path, monkeypatch) -> None:
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(report_install.tempfile, "mkdtemp", denied)
    out = tmp_path / "new" / "reports"
    with pytest.raises(ReportError, match=re.escape(f"cannot write reports into '{out}': Permission denied")):
        write_reports(rendered["sizes"], out)
    assert not out.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod")
def test_a_read_only_out_folder_is_refused(rendered, out) -> None:
    before = snapshot(out)
    out.chmod(0o500)
    try:
        with pytest.raises(ReportError, match="Permission denied"):
            write_reports(rendered["other"], out)
    finally:
        out.chmod(0o700)
    assert snapshot(out) == before


def test_check_reports_ignores_other_files_but_not_missing_or_stale_ones(rendered, out, capsys) -> None:
    (out / "notes.txt").write_text("mine\n")
    assert check_reports(rendered["sizes"], out) == 0
    (out / "sizes-mr-default-cpu-throughput.png").unlink()
    (out / "old-mr.md").write_text("left over\n")
    (out / ".generated").write_text((out / ".generated").read_text() + "old-mr.md\n")
    assert check_reports(rendered["sizes"], out) == 1
    assert ".generated, sizes-mr-default-cpu-throughput.png, old-mr.md (stale)" in capsys.readouterr().out


def test_report_cli_says_error_and_exits_2(tmp_path, capsys) -> None:
    assert main(["report", "--results-dir", str(tmp_path / "typo"), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: results folder '{tmp_path / 'typo'}' does not exist; pass --results-dir with the folder "
        "holding the results CSVs")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("source", ["-x:results/runs.csv", "--output=/tmp/f:results/runs.csv",
                                   "HEAD..main:results/runs.csv", "HEAD two:results/runs.csv",
                                   ":results/runs.csv"])
def test_compare_refuses_a_bad_git_ref_without_running_git(source, monkeypatch) -> None:
    def never(*args, **kwargs):
        pytest.fail(f"git ran with {args}")

    monkeypatch.setattr(subprocess, "run", never)
    ref = source.partition(":")[0]
    with pytest.raises(SchemaError, match=f"git ref '{re.escape(ref)}' in '.*' .*; write GIT_REF:path") as caught:
        read_source(source)
    assert "\n" not in str(caught.value)


def test_compare_passes_a_plain_ref_to_git_and_names_a_missing_file(monkeypatch, tmp_path) -> None:
    seen = []

    def fake(args, **kwargs):
        seen.append(args)
        return subprocess.CompletedProcess(args, 1, b"", b"fatal: path 'x.csv' does not exist in 'HEAD~1'\n")

    monkeypatch.setattr(subprocess, "run", fake)
    with pytest.raises(SchemaError, match="cannot read 'x.csv' at git ref 'HEAD~1': fatal: path"):
        read_source("HEAD~1:x.csv")
    assert seen == [["git", "show", "HEAD~1:x.csv"]]
    missing = str(tmp_path / "old.csv")
    expected = f"'{missing}' does not exist and is not GIT_REF:path; pass a results CSV file or GIT_REF:path"
    with pytest.raises(SchemaError, match=re.escape(expected)):
        read_source(missing)


def test_two_reports_at_once_take_turns_and_leave_a_whole_folder(rendered, out) -> None:
    root = Path(__file__).resolve().parent.parent
    command = [sys.executable, "-m", "bench", "report", "--out", str(out)]
    procs = [subprocess.Popen(command + ["--results-dir", str(rendered[which])], cwd=root, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for which in ("other", "sizes")]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert not [p for p in out.iterdir() if report_install.TEMP_PREFIX in p.name]
    assert check_reports(rendered["sizes"], out) == 0 or check_reports(rendered["other"], out) == 0


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux /proc (a folder nobody can write in)")
def test_a_reports_folder_where_nothing_can_be_written_is_one_line_not_a_hang(rendered, capsys) -> None:
    assert main(["report", "--results-dir", str(rendered["sizes"]), "--out", "/proc/bench-reports"]) == 2
    err = capsys.readouterr().err
    assert "cannot write reports into '/proc/bench-reports'" in err and err.count("\n") == 1


def test_a_temporary_folder_left_by_a_killed_report_is_swept(rendered, out) -> None:
    leftover = out / f"{report_install.TEMP_PREFIX}killed"
    (leftover / "new").mkdir(parents=True)
    write_reports(rendered["sizes"], out)
    assert not leftover.exists() and check_reports(rendered["sizes"], out) == 0
