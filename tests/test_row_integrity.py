"""A row is whole and there once: damaged last lines set aside, a full disk, concurrent writers, run
claims, reading past damage, and the upgrade of an earlier schema version."""

from __future__ import annotations

import csv
import errno
import json
import multiprocessing
import os
import sys
from pathlib import Path

import pytest

from bench.record import store as results_module
from bench.record.schema import COLUMNS, KNOWN_HEADERS, SCHEMA, SCHEMA_VERSION, SchemaError
from bench.record.store import RunClaim, append_row, finished_rows, migrate, read_rows

ROOT = Path(__file__).resolve().parent.parent


def row(rid: str, **values) -> dict:
    return {"schema_version": 2, "run_id": rid, "grid": "g", "task": "t", "backbone": "b", "method": "m",
            "seed": 0, "acc": 0.75, "status": "ok", "error": "", **values}


def test_a_last_line_without_newline_is_set_aside_not_glued(tmp_path) -> None:
    path = tmp_path / "runs.csv"
    append_row(path, row("first"))
    whole = path.read_bytes()
    half = b"2,cut-off,2026-01-01,g,t"  # a writer killed mid-row (an older version, or an editor)
    path.write_bytes(whole + half)
    messages: list[str] = []
    append_row(path, row("second"), say=messages.append)
    assert [r["run_id"] for r in read_rows(path)] == ["first", "second"]
    assert path.read_bytes().startswith(whole) and half not in path.read_bytes()
    assert len(messages) == 1 and f"at byte {len(whole)}" in messages[0] and "runs.csv.damaged" in messages[0]
    aside = (tmp_path / "runs.csv.damaged").read_bytes()
    assert half in aside and f"bytes {len(whole)}-{len(whole) + len(half)}".encode() in aside


def test_a_cut_row_ending_in_newline_is_set_aside_too(tmp_path) -> None:
    path = tmp_path / "runs.csv"
    append_row(path, row("first"))
    size = path.stat().st_size
    with path.open("a") as handle:
        handle.write("2,short,row\n")
    append_row(path, row("second"), say=lambda _: None)
    assert [r["run_id"] for r in read_rows(path)] == ["first", "second"]
    assert "short,row" in (tmp_path / "runs.csv.damaged").read_text()
    assert path.read_bytes()[size:].startswith(b"2,second")


def test_readers_skip_damage_anywhere_and_name_its_offset(tmp_path) -> None:
    path = tmp_path / "runs.csv"
    append_row(path, row("a"))
    offset = path.stat().st_size
    append_row(path, row("b", error='quote " comma, newline\nend'))
    data = path.read_bytes()  # damage in the middle (an older writer) and at the end (a killed one)
    path.write_bytes(data[:offset] + b"2,glued,x,y\n" + data[offset:] + b"2,tail-without-newline")
    warnings: list[str] = []
    rows = read_rows(path, warn=warnings.append)
    assert [r["run_id"] for r in rows] == ["a", "b"]
    assert rows[1]["error"] == 'quote " comma, newline\nend'
    assert any(f"byte {offset}" in w for w in warnings) and len(warnings) == 2
    assert set(finished_rows(path, warn=lambda _: None)) == {"a", "b"}


def test_a_full_disk_leaves_no_half_row(tmp_path, monkeypatch) -> None:
    path = tmp_path / "runs.csv"
    append_row(path, row("first"))
    before = path.read_bytes()
    real_write = os.write

    def half_then_full(fd, data):  # the kernel takes part of the row, then the disk is full
        if len(data) > 40:
            real_write(fd, bytes(data[:40]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(results_module.os, "write", half_then_full)
    with pytest.raises(SchemaError, match="No space left on device; the row was not written"):
        append_row(path, row("second"))
    monkeypatch.undo()
    assert path.read_bytes() == before
    append_row(path, row("third"))
    assert [r["run_id"] for r in read_rows(path)] == ["first", "third"]


def test_a_full_disk_on_a_new_file_leaves_it_empty_and_usable(tmp_path, monkeypatch) -> None:
    path = tmp_path / "runs.csv"

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(results_module.os, "write", full)
    with pytest.raises(SchemaError, match="No space left"):
        append_row(path, row("first"))
    monkeypatch.undo()
    assert path.read_bytes() == b""
    append_row(path, row("first"))
    assert [r["run_id"] for r in read_rows(path)] == ["first"]


def _writer(path: str, prefix: str, count: int, start) -> None:
    start.wait()
    for i in range(count):
        append_row(__import__("pathlib").Path(path), row(f"{prefix}-{i}", error="x" * 3000))


@pytest.mark.parametrize("attempt", range(3))
def test_concurrent_writers_keep_every_row_whole_and_the_header_once(tmp_path, attempt) -> None:
    path = tmp_path / "runs.csv"
    context = multiprocessing.get_context("fork")
    start = context.Event()
    workers = [context.Process(target=_writer, args=(str(path), f"w{w}", 25, start)) for w in range(4)]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    text = path.read_text()
    assert text.count("schema_version,run_id") == 1
    rows = read_rows(path, warn=pytest.fail)
    assert sorted(r["run_id"] for r in rows) == sorted(f"w{w}-{i}" for w in range(4) for i in range(25))
    assert all(r["error"] == "x" * 3000 for r in rows)


def test_a_run_claim_is_exclusive_until_released(tmp_path) -> None:
    path = tmp_path / "runs.csv"
    first, second = RunClaim(path, "abc"), RunClaim(path, "abc")
    assert first.acquire()
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    probe = context.Process(target=lambda: queue.put(RunClaim(path, "abc").acquire()))
    probe.start()
    probe.join(30)
    assert queue.get(timeout=5) is False  # another process cannot take it
    first.release()
    assert second.acquire()
    second.release()


@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_an_earlier_schema_is_read_refused_for_append_and_migrated(tmp_path, version: int) -> None:
    path = tmp_path / "runs.csv"
    old = KNOWN_HEADERS[version]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=old, lineterminator="\n")
        writer.writeheader()
        writer.writerow({c: "" for c in old} | {"run_id": "old", "status": "ok", "acc": "0.5"})
    before = path.read_bytes()
    assert read_rows(path)[0]["run_id"] == "old" and read_rows(path)[0]["segments"] == ""
    with pytest.raises(SchemaError, match=r"without columns .*segments.*python -m bench migrate"):
        append_row(path, row("new"))
    assert path.read_bytes() == before
    assert f"1 rows upgraded from schema v{version} to v5" in migrate(path)
    assert (tmp_path / f"runs.csv.v{version}.bak").read_bytes() == before
    append_row(path, row("new"))
    rows = read_rows(path)
    assert [r["run_id"] for r in rows] == ["old", "new"] and rows[0]["acc"] == "0.5"
    assert next(csv.reader(path.open())) == COLUMNS
    assert "nothing to do" in migrate(path)


def test_an_unwritable_results_path_is_one_line(tmp_path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(SchemaError, match="cannot append to .*runs.csv"):
        append_row(blocker / "runs.csv", row("x"))


def test_report_and_compare_read_past_a_damaged_line(tmp_path, capsys) -> None:
    from bench.report.compare import compare
    from bench.report.load import load_results

    path = tmp_path / "runs.csv"
    for seed in (0, 1):
        append_row(path, row(f"r{seed}", seed=seed, device="cpu", threads=2, budget="default", cpu="x",
                             train_samples_per_s=10.0 + seed, eval_samples_per_s=5.0))
    with path.open("ab") as handle:
        handle.write(b"2,half-a-row")
    assert list(load_results(tmp_path)["run_id"]) == ["r0", "r1"]
    table = compare(str(path), str(path))
    assert "0.7500" in table and "10.5" in table and "1.00" in table
    assert "damaged record at byte" in capsys.readouterr().err


def test_a_real_full_disk_leaves_only_whole_rows(tmp_path) -> None:
    """A 40 KiB tmpfs filled up by appends (needs root and mount; skipped elsewhere)."""
    import subprocess

    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        path = mount / "runs.csv"
        written = 0
        with pytest.raises(SchemaError, match="No space left on device; the row was not written"):
            while written < 1000:
                append_row(path, row(f"r{written}", error="x" * 1500))
                written += 1
        rows = read_rows(path, warn=pytest.fail)
        assert [r["run_id"] for r in rows] == [f"r{i}" for i in range(written)] and written > 5
        assert path.read_bytes().endswith(b"\n")
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


def test_a_row_with_bytes_that_are_not_utf8_is_damaged_not_read(tmp_path) -> None:
    path = tmp_path / "runs.csv"
    append_row(path, row("a"))
    offset = path.stat().st_size
    append_row(path, row("b"))
    append_row(path, row("c"))
    data = bytearray(path.read_bytes())
    data[offset + 5] = 0xFF  # one flipped byte inside row b
    path.write_bytes(bytes(data))
    warnings: list[str] = []
    assert [r["run_id"] for r in read_rows(path, warn=warnings.append)] == ["a", "c"]
    assert warnings == [f"warning: {path}: damaged record at byte {offset} skipped: bytes that are not UTF-8 "
                        "(a damaged disk or an editor)"]


def test_the_schema_table_gives_every_header_this_code_has_read_and_written() -> None:
    """``SCHEMA`` is the one table the headers derive from: a change to it that alters an earlier
    version's header would leave files of that version unreadable, and the committed file is current."""
    pinned = json.loads((ROOT / "tests" / "fixtures" / "known_headers.json").read_text())
    assert {str(version): header for version, header in KNOWN_HEADERS.items()} == pinned
    assert len({column.name for column in SCHEMA}) == len(SCHEMA) == len(pinned[str(SCHEMA_VERSION)])
    assert all(1 <= column.since <= SCHEMA_VERSION for column in SCHEMA)
    with (ROOT / "results" / "runs.csv").open(newline="", encoding="utf-8") as handle:
        assert next(csv.reader(handle)) == KNOWN_HEADERS[SCHEMA_VERSION]


def test_a_column_added_without_its_version_is_refused_at_import(tmp_path, monkeypatch) -> None:
    """The schema's version is its newest column's ``since``: a column added as v6 while the version says 5 (or a
    version raised with no column for it) stops the import with what to fix, before any row is written."""
    import importlib.util
    import inspect

    import bench.record.schema as schema

    source = inspect.getsource(schema)
    assert f"SCHEMA_VERSION = {SCHEMA_VERSION}  #" in source
    version, newer = f"SCHEMA_VERSION = {SCHEMA_VERSION}  #", f"SCHEMA_VERSION = {SCHEMA_VERSION + 1}  #"
    column = f'Column("error"), Column("energy_j", since={SCHEMA_VERSION + 1}),'
    for label, edited in [("column", source.replace('Column("error"),', column)),
                          ("version", source.replace(version, newer))]:
        assert edited != source, label
        path = tmp_path / f"schema_{label}.py"
        path.write_text(edited)
        spec = importlib.util.spec_from_file_location(f"schema_{label}", path)
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
        with pytest.raises(RuntimeError, match="a new column's since is the new version"):
            spec.loader.exec_module(module)
