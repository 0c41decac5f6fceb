"""Rows are checked on read as on write: a value outside its column's domain makes the row damaged
(reported by offset, never aggregated, never a finished run); ``report`` refuses a folder with no valid
row; ``migrate`` keeps damaged records and fails in one line; an append reads the file's end only, and
the grid's look-up only what was appended, both telling the same as a reading of the whole file."""

from __future__ import annotations

import csv
import errno
import io
import os
import random
import shutil
from pathlib import Path

import pytest
from fake_rows import make_row

from bench.__main__ import main
from bench.record import store as results_module
from bench.record.schema import COLUMNS, KNOWN_HEADERS, SchemaError
from bench.record.store import append_row, finished_rows, format_row, migrate, read_rows
from bench.report.load import load_results
from bench.report.pages import write_reports

ROOT = Path(__file__).resolve().parent.parent

OUT_OF_DOMAIN = [("acc", "1.7"), ("acc", "-0.2"), ("acc", "170"), ("acc", "nan"), ("acc", ""), ("acc_select", "inf"),
                 ("pred_majority_share", "1.01"), ("trainable_pct", "170"), ("n_train", "-5"), ("n_eval", "10.5"),
                 ("train_s", "-1"), ("train_samples_per_s", "NaN"), ("peak_mem_mb", "lots"), ("threads", "0"),
                 ("seed", "-1"), ("hparams", '{"lr": 0.01'), ("hparams", "[1, 2]"), ("git_dirty", "maybe"),
                 ("schema_version", "9"), ("status", "done")]


def good(run: str, seed: int = 0, acc: float = 0.8, **extra) -> dict:
    return make_row("minilm-l6", "finetune", seed, acc, run_id=run, **extra)


def csv_line(values: dict[str, str]) -> bytes:
    buffer = io.StringIO()
    csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n").writerow(values)
    return buffer.getvalue().encode()


def hand_written(path: Path, run: str, column: str, text: str) -> int:
    """Append a row as an editor or another tool would, with ``column`` set to ``text``; its offset."""
    offset = path.stat().st_size
    with path.open("ab") as handle:
        handle.write(csv_line({**format_row(good(run, seed=1)), column: text}))
    return offset


def test_every_committed_row_is_within_its_domains() -> None:
    path = ROOT / "results" / "runs.csv"
    warnings: list[str] = []
    rows = read_rows(path, warn=warnings.append)
    with path.open(newline="", encoding="utf-8") as handle:
        count = sum(1 for _ in csv.DictReader(handle))
    assert warnings == [] and len(rows) == count >= 220


def test_reading_a_whole_file_gives_each_record_the_verdict_and_reason_of_the_one_row_check(tmp_path) -> None:
    """``_scan`` checks a file a column at a time (each distinct value once); every record must still get
    exactly what ``_damage`` says of it alone: good rows kept, the same reason for each damaged one."""
    rng = random.Random(7)
    lines: list[bytes] = []
    for i in range(300):
        values = format_row(good(f"r{i}", seed=i, acc=rng.choice([0.5, 0.75, 0.8125])))
        if i % 7 == 3:  # a bad value, the same one in several records
            column, text = OUT_OF_DOMAIN[rng.randrange(len(OUT_OF_DOMAIN))]
            values[column] = text
        if i % 11 == 5:
            values.update(status="failed", acc="")  # a failed run needs no accuracy
        lines.append(csv_line(values))
    lines[40] = lines[40].replace(b"minilm-l6", b"minilm-\xff")  # not UTF-8
    lines[41] = lines[41][:-1] + b',extra\n'  # a field too many
    lines[299] = lines[299][:-1]  # cut: no newline
    data = ",".join(COLUMNS).encode() + b"\n" + b"".join(lines)
    records = list(results_module._records(data))
    header = records[0].fields
    expected = [results_module._damage(record, header) for record in records[1:]]
    judged = list(zip(records[1:], expected, strict=True))
    rows, damaged = results_module._scan(data, "made.csv")
    assert [record.offset for record, _ in damaged] == [record.offset for record, why in judged if why]
    assert [why for _, why in damaged] == [why for why in expected if why]
    assert [row["run_id"] for row in rows] == [record.fields[1] for record, why in judged if not why]
    assert 40 < len(damaged) < 60 and any("not UTF-8" in why for _, why in damaged)


@pytest.mark.parametrize(("column", "text"), OUT_OF_DOMAIN)
def test_a_value_outside_its_domain_makes_the_row_damaged_on_read(tmp_path, column, text) -> None:
    path = tmp_path / "runs.csv"
    append_row(path, good("kept"))
    offset = hand_written(path, "junk", column, text)
    with path.open("ab") as handle:
        handle.write(csv_line(format_row(good("after", seed=2))))
    warnings: list[str] = []
    assert [r["run_id"] for r in read_rows(path, warn=warnings.append)] == ["kept", "after"]
    assert len(warnings) == 1 and f"damaged record at byte {offset} skipped: {column}" in warnings[0]
    assert set(finished_rows(path, warn=lambda _: None)) == {"kept", "after"}  # the grid runs it again
    assert list(load_results(tmp_path)["run_id"]) == ["kept", "after"]


def test_an_out_of_domain_last_row_is_set_aside_before_an_append(tmp_path) -> None:
    path = tmp_path / "runs.csv"
    append_row(path, good("kept"))
    offset = hand_written(path, "junk", "acc", "4312.5")
    junk = path.read_bytes()[offset:]
    messages: list[str] = []
    append_row(path, good("after", seed=2), say=messages.append)
    assert [r["run_id"] for r in read_rows(path)] == ["kept", "after"]
    assert len(messages) == 1
    assert f"damaged last record at byte {offset} (acc '4312.5' is outside [0, 1])" in messages[0]
    assert junk in (tmp_path / "runs.csv.damaged").read_bytes()


@pytest.mark.parametrize(("column", "value"), [("acc", 1.7), ("acc", float("nan")), ("train_s", -1.0),
                                               ("n_train", 2.5), ("hparams", "{oops"), ("acc", None)])
def test_a_value_outside_its_domain_is_refused_on_write(tmp_path, column, value) -> None:
    path = tmp_path / "runs.csv"
    append_row(path, good("kept"))
    before = path.read_bytes()
    with pytest.raises(SchemaError, match=f"row junk not written: {column}"):
        append_row(path, good("junk", **{column: value}))
    with pytest.raises(ValueError):  # as other rows the schema refuses
        format_row(good("junk", **{column: value}))
    assert path.read_bytes() == before


def test_a_failed_row_needs_no_accuracy_but_a_finished_one_does(tmp_path) -> None:
    path = tmp_path / "runs.csv"
    append_row(path, make_row("minilm-l6", "prefix", 0, 0.0, status="failed", error="refused"))
    assert [r["status"] for r in read_rows(path)] == ["failed"]
    with pytest.raises(SchemaError, match="acc is empty in a collapsed row"):
        append_row(path, {**make_row("minilm-l6", "prefix", 1, 0.5, status="collapsed"), "acc": ""})


def test_the_report_never_averages_out_of_domain_accuracies(tmp_path) -> None:
    path = tmp_path / "results" / "runs.csv"
    for seed, acc in enumerate((0.80, 0.82)):
        append_row(path, good(f"ok-{seed}", seed=seed, acc=acc))
    for seed, text in ((2, "1.7"), (3, "-0.2"), (4, "170"), (5, "nan")):
        hand_written(path, f"junk-{seed}", "acc", text)
    out = tmp_path / "reports"
    write_reports(path.parent, out)
    page = (out / "sizes-mr.md").read_text()
    assert "most accurate `finetune` (81.0 ± 1.4 %)" in page
    assert "| 2 " in page.split("| minilm-l6 (22.6M) | finetune |")[1].split("\n")[0]  # seeds column


def reports_of(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    results = tmp_path / "good"
    for seed in (0, 1):
        append_row(results / "runs.csv", good(f"r{seed}", seed=seed))
    out = tmp_path / "reports"
    write_reports(results, out)
    (out / "notes.md").write_text("mine\n")
    return out, snapshot(out)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("content", ["empty", "header-only", "all-damaged", "nan-accuracy", "broken-hparams"])
def test_report_refuses_results_with_no_valid_row_and_changes_nothing(tmp_path, capsys, content) -> None:
    out, before = reports_of(tmp_path)
    results = tmp_path / "results"
    results.mkdir()
    header = (",".join(COLUMNS) + "\n").encode()
    rows = {"empty": b"", "header-only": header, "all-damaged": header + b"5,cut,row\n5,another\n",
            "nan-accuracy": header + csv_line({**format_row(good("a")), "acc": "nan"})
            + csv_line({**format_row(good("b", seed=1)), "acc": "NaN"}),
            "broken-hparams": header + csv_line({**format_row(good("a")), "hparams": '{"lr": 0.01, '})}[content]
    (results / "runs.csv").write_bytes(rows)
    capsys.readouterr()
    assert main(["report", "--results-dir", str(results), "--out", str(out)]) == 2
    err = capsys.readouterr().err.splitlines()
    errors = [line for line in err if not line.startswith("warning: ")]
    assert len(errors) == 1 and errors[0].startswith("error: ") and "holds no valid row" in errors[0]
    assert "nothing was changed" in errors[0] and "Traceback" not in "\n".join(err)
    assert snapshot(out) == before
    assert main(["report", "--check", "--results-dir", str(results), "--out", str(out)]) == 2


def test_broken_hparams_in_one_row_is_a_warning_not_a_traceback(tmp_path, capsys) -> None:
    results = tmp_path / "results"
    append_row(results / "runs.csv", good("kept"))
    offset = hand_written(results / "runs.csv", "broken", "hparams", '{"lr": ')
    assert main(["report", "--results-dir", str(results), "--out", str(tmp_path / "reports")]) == 0
    err = capsys.readouterr().err
    assert f"damaged record at byte {offset} skipped: hparams" in err and "Traceback" not in err


# --- migrate --------------------------------------------------------------------------------------
def earlier_file(path: Path, version: int = 4) -> tuple[bytes, list[bytes]]:
    """A results file of schema ``version``: two whole rows around a cut one and an out-of-domain one;
    returns its bytes and the damaged records' bytes."""
    columns = KNOWN_HEADERS[version]

    def line(values: dict[str, str]) -> bytes:
        buffer = io.StringIO()
        csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="ignore").writerow(values)
        return buffer.getvalue().encode()

    damaged = [b"4,short,row\n", line({**format_row(good("junk", seed=2)), "acc": "1.7"})]
    data = ((",".join(columns) + "\n").encode() + line(format_row(good("a"))) + damaged[0]
            + line(format_row(good("b", seed=1))) + damaged[1])
    path.write_bytes(data)
    return data, damaged


def test_migrate_keeps_damaged_records_as_they_were_and_says_so(tmp_path) -> None:
    path = tmp_path / "runs.csv"
    data, damaged = earlier_file(path)
    message = migrate(path)
    assert [r["run_id"] for r in read_rows(path)] == ["a", "b"]
    aside = (tmp_path / "runs.csv.damaged").read_bytes()
    assert all(record in aside for record in damaged)
    assert "2 damaged record(s)" in message and str(tmp_path / "runs.csv.damaged") in message
    assert (tmp_path / "runs.csv.v4.bak").read_bytes() == data


@pytest.mark.parametrize("fails", ["copy2", "replace", "open"])
def test_migrate_that_cannot_write_is_one_line_and_loses_nothing(tmp_path, monkeypatch, capsys, fails) -> None:
    path = tmp_path / "runs.csv"
    data, _ = earlier_file(path)

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(args[-1]))

    if fails == "copy2":
        monkeypatch.setattr(results_module.shutil, "copy2", denied)
    elif fails == "replace":
        monkeypatch.setattr(results_module.os, "replace", denied)
    else:  # the temporary file cannot be made: a read-only folder
        real_open = Path.open
        monkeypatch.setattr(Path, "open", lambda self, mode="r", *a, **k: denied(self) if "w" in mode
                            else real_open(self, mode, *a, **k))
    assert main(["migrate", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: cannot migrate {path}: Permission denied")
    assert err[0].endswith("the file is as it was")
    assert path.read_bytes() == data
    assert not [p for p in tmp_path.iterdir() if "migrating" in p.name]


# --- reading only the end ---------------------------------------------------------------------------
NASTY = ['', 'plain', 'quote " comma, newline\nend', '"\n1,looks,like,a,row\n"', 'a\n\n"b"\n', '""\n,']


def random_file(rng: random.Random, path: Path, looked_up: bool) -> bytes:
    """Whole rows with quoted newlines and quotes in them, then maybe a damaged end; with ``looked_up``,
    the grid's look-up has read the whole rows before the end is written."""
    data = (",".join(COLUMNS) + "\n").encode()
    for i in range(rng.randint(0, 12)):
        data += csv_line(format_row(good(f"r{i}", seed=i, error=rng.choice(NASTY) * rng.randint(1, 3))))
    path.write_bytes(data)
    if looked_up:
        finished_rows(path, warn=lambda _: None)
    end = rng.choice(["whole", "cut", "short", "glued", "blank", "out-of-domain"])
    last = csv_line(format_row(good("last", seed=99, error=rng.choice(NASTY))))
    data += {"whole": last, "cut": last[:rng.randint(1, len(last) - 1)], "short": b"5,short,row\n",
             "glued": last[:-30] + last, "blank": b"\n", "out-of-domain": last.replace(b",0.8,", b",8.0,", 1)}[end]
    path.write_bytes(data)
    return data


def test_an_append_sets_aside_what_a_whole_reading_finds_damaged_at_the_end(tmp_path) -> None:
    rng = random.Random(21)
    for trial in range(200):
        path = tmp_path / f"t{trial}" / "runs.csv"
        path.parent.mkdir()
        data = random_file(rng, path, looked_up=trial % 2 == 1)
        records = [r for r in list(results_module._records(data))[1:] if data[r.offset:r.end].strip()]
        damaged_last = records and results_module._damage(records[-1], COLUMNS)
        append_row(path, good("new", seed=100), say=lambda _: None)
        after = path.read_bytes()
        if damaged_last:
            assert after.startswith(data[:records[-1].offset])
            assert data[records[-1].offset:] in (path.parent / "runs.csv.damaged").read_bytes()
        else:
            assert after.startswith(data) and not (path.parent / "runs.csv.damaged").exists()
        assert read_rows(path, warn=lambda _: None)[-1]["run_id"] == "new"
        assert after.endswith(csv_line(format_row(good("new", seed=100))))


def test_the_grid_look_up_reads_what_was_appended_and_sees_rewrites(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(results_module, "CHECKED_BYTES", 300)
    path = tmp_path / "runs.csv"

    def same() -> None:  # what a reading of the whole file says
        whole = {r["run_id"]: r for r in read_rows(path, warn=lambda _: None) if r["status"] in ("ok", "collapsed")}
        assert finished_rows(path, warn=lambda _: None) == whole

    assert finished_rows(path) == {}
    for seed in range(4):
        append_row(path, good(f"r{seed}", seed=seed, error='multi\n"line"'))
        same()
    with path.open("ab") as handle:
        handle.write(b"5,cut-off,row")  # a writer of an older version killed mid-row
    same()
    append_row(path, make_row("minilm-l6", "prefix", 0, 0.0, status="failed", run_id="r0"), say=lambda _: None)
    same()  # the cut row set aside, the file cut back and appended to: read again
    assert set(finished_rows(path)) == {"r0", "r1", "r2", "r3"}  # a failed rerun does not unfinish r0
    data = path.read_bytes().replace(b",ok,", b",failed,")  # rewritten in place, same length, same file
    with path.open("r+b") as handle:
        handle.write(data)
    same()
    assert finished_rows(path) == {}
    replacement = tmp_path / "new.csv"
    shutil.copy(path, replacement)
    append_row(replacement, good("other"))
    os.replace(replacement, path)  # as migrate does
    same()
    assert set(finished_rows(path)) == {"other"}
