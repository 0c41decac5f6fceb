"""The append-only results file: one run = one row, written whole or not at all, read back checked.

* ``append_row`` takes an inter-process lock (``filelock``, on ``<file>.lock``), writes the header only
  into an empty file, and writes the row in one ``O_APPEND`` write followed by ``fsync``. If the write
  fails part-way (a full disk), the file is cut back to its previous length, so no half row is left.
* A row outside its columns' domains (``bench.record.schema``) is refused on write (``RowError``) and is
  a damaged record on read, as a cut or glued one is.
* A damaged last record (no final newline, a cut-off row, a row glued to another, a value outside its
  domain: a killed writer of an older version, an editor) is detected before appending, reported with
  its byte offset and moved aside into ``<file>.damaged`` (appended there, never dropped), so the next
  row is never glued onto it.
* ``read_rows`` skips damaged records anywhere in a file with a warning naming the byte offset; it
  reads files of this schema and of earlier versions of it (columns added later read as empty).
  ``migrate`` upgrades an earlier-version file once (atomically, keeping a backup, and keeping its
  damaged records in ``<file>.damaged``).
* ``finished_rows`` (the grid's look-up before each run) and the append's damage check read only what
  was appended since this process last read the file (``_indexed``; its first read is of the whole
  file), so a run costs the same at 50,000 rows as at 100 (``python -m benchmarks.append_cost``); a file
  rewritten otherwise is read whole again.
* ``RunClaim`` is a per-run lock so two processes running the same grid never run the same run twice;
  together with re-reading the file under the claim, a run is recorded once.

A file whose header is not one of this schema's versions is never touched: ``SchemaError`` says what
differs.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from bench.record.schema import (
    COLUMNS,
    CURRENT_COLUMNS,
    DOMAINS,
    FINISHED,
    KNOWN_HEADERS,
    REQUIRED,
    REQUIRED_WHEN_FINISHED,
    SCHEMA_VERSION,
    STATUSES,
    RowError,
    SchemaError,
    row_problem,
)

LOCK_TIMEOUT_S = 120.0  # appends take milliseconds; a lock held this long is a stuck process

# --- reading, with byte offsets -------------------------------------------------------------------
@dataclass(frozen=True)
class Record:
    offset: int  # byte offset of the record's first byte in the file
    end: int  # byte offset just past it
    fields: list[str]
    terminated: bool  # ended with a newline
    utf8: bool = True  # False when some of its bytes were not UTF-8


def _records(data: bytes) -> Iterator[Record]:
    """The CSV records of ``data`` with the byte range each came from (quoted newlines handled)."""
    lines = data.splitlines(keepends=True)
    ends = list(itertools.accumulate(map(len, lines)))  # byte offset just past each line
    undecodable: set[int] = set()  # lines that are not UTF-8, by number
    try:
        texts = [line.decode("utf-8") for line in lines]
    except UnicodeDecodeError:
        texts = []
        for number, line in enumerate(lines):
            try:
                texts.append(line.decode("utf-8"))
            except UnicodeDecodeError:
                undecodable.add(number)
                texts.append(line.decode("utf-8", errors="replace"))  # offsets come from the raw bytes
    reader = csv.reader(texts)
    start, first_line = 0, 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error:  # e.g. a quoted field left open at the end of a cut file
            fields = []
        last_line = reader.line_num  # the lines read so far: this record's end
        end = ends[last_line - 1] if last_line else start
        utf8 = not undecodable.intersection(range(first_line, last_line))
        yield Record(start, end, fields, data[end - 1:end] == b"\n", utf8)
        start, first_line = end, last_line


def _refuse_special(path: Path) -> None:
    """A FIFO, device or socket where a results file belongs: refused by type before it is opened
    (opening a FIFO waits for a writer forever)."""
    from bench.file_kinds import special_kind

    kind = special_kind(path)
    if kind:
        raise SchemaError(f"results file {path} is {kind}, not a regular file; nothing was read")


def _read_bytes(path: Path) -> bytes:
    _refuse_special(path)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SchemaError(f"cannot read results file {path}: {exc.strerror or exc}") from None


def _header_of(path: Path | str, data: bytes) -> list[str]:
    first = data.split(b"\n", 1)[0]
    try:
        return next(csv.reader([first.decode("utf-8").rstrip("\r")]), [])
    except (UnicodeDecodeError, csv.Error):
        raise SchemaError(f"cannot read results file {path}: its first line is not a CSV header in UTF-8; it is "
                          "left untouched: write to another file with --results, or move it aside") from None


def _version(path: Path | str, header: list[str]) -> int:
    for version, columns in KNOWN_HEADERS.items():
        if header == columns:
            return version
    missing = [c for c in COLUMNS if c not in header]
    extra = [c for c in header if c not in COLUMNS]
    raise SchemaError(
        f"{path} has another schema (missing {missing or 'none'}, extra {extra or 'none'}); it is "
        "left untouched: write to another file with --results, or move it aside")


def check_schema(path: Path, writable: bool = False) -> None:
    """Raise SchemaError unless ``path`` is absent, empty, or has a header of this schema; with
    ``writable``, only the current version will do (an earlier one needs ``migrate``)."""
    _refuse_special(path)
    if not path.exists() or path.stat().st_size == 0:
        return
    try:
        with path.open("rb") as handle:
            first = handle.readline()  # the header is all this needs, not the whole file
    except OSError as exc:
        raise SchemaError(f"cannot read results file {path}: {exc.strerror or exc}") from None
    version = _version(path, _header_of(path, first))
    if writable and version != SCHEMA_VERSION:
        raise SchemaError(
            f"{path} has results schema v{version} (without columns "
            f"{', '.join(c for c in COLUMNS if c not in KNOWN_HEADERS.get(version, COLUMNS))}); upgrade it once "
            f"with: python -m bench migrate {path}  (rewrites it atomically and keeps the original as "
            f"{path.name}.v{version}.bak)")


def _damage(record: Record, header: list[str]) -> str | None:
    """Why ``record`` is not a whole row under ``header`` with every value in its column's domain, or None."""
    if not record.terminated:
        return "the last line has no newline (cut off by a killed writer or a full disk)"
    if not record.utf8:
        return "bytes that are not UTF-8 (a damaged disk or an editor)"
    if len(record.fields) != len(header):
        return f"{len(record.fields)} fields where the header has {len(header)} (a cut or glued row)"
    return row_problem(dict(zip(header, record.fields, strict=True)))


def _damages(records: list[Record], header: list[str]) -> list[str | None]:
    """``_damage`` of each record, found a column at a time: each distinct value of a column is checked
    against its domain once (a results file repeats most of its values), and ``row_problem`` gives the
    reason only for the records where a value failed or a required one is empty, so it decides every
    verdict as it does for one row."""
    whys: list[str | None] = [None] * len(records)
    whole = []
    for i, record in enumerate(records):
        if not record.terminated or not record.utf8 or len(record.fields) != len(header):
            whys[i] = _damage(record, header)
        else:
            whole.append(i)
    suspects: set[int] = set()
    values_by_column = list(zip(*(records[i].fields for i in whole), strict=True)) if whole else [()] * len(header)
    for column, values in zip(header, values_by_column, strict=True):
        domain = DOMAINS.get(column)
        required = column in REQUIRED or column in REQUIRED_WHEN_FINISHED
        if column not in CURRENT_COLUMNS or (domain is None and not required):
            continue
        failing = {text for text in set(values) if text and domain is not None and domain.problem(text)}
        if required:
            failing.add("")
        if failing:
            suspects.update(i for i, text in zip(whole, values, strict=True) if text in failing)
    for i in suspects:
        whys[i] = row_problem(dict(zip(header, records[i].fields, strict=True)))
    return whys


def read_rows(path: Path, warn: Callable[[str], None] | None = None) -> list[dict[str, str]]:
    """Every whole row of a results CSV as strings, in file order, with every current column (columns
    an earlier schema version lacked are empty). Damaged records are skipped with a warning naming
    their byte offset (``warn`` defaults to stderr)."""
    if not path.exists():
        return []
    return parse_rows(_read_bytes(path), path, warn)


def parse_rows(data: bytes, source: Path | str, warn: Callable[[str], None] | None = None) -> list[dict[str, str]]:
    """``read_rows`` for the bytes of a results CSV (a file, or a version of it from git) named ``source``."""
    warn = warn or (lambda text: print(text, file=sys.stderr))
    rows, damaged = _scan(data, source)
    for record, why in damaged:
        warn(f"warning: {source}: damaged record at byte {record.offset} skipped: {why}")
    return rows


def _scan(data: bytes, source: Path | str) -> tuple[list[dict[str, str]], list[tuple[Record, str]]]:
    """The whole rows of a results CSV's bytes (every current column), and its damaged records with why."""
    if not data:
        return [], []
    header = _header_of(source, data)
    current = _version(source, header) == SCHEMA_VERSION
    rows, damaged = [], []
    records = [record for record in list(_records(data))[1:] if record.fields]  # less the blank lines
    for record, why in zip(records, _damages(records, header), strict=True):
        if why:
            damaged.append((record, why))
            continue
        values = dict(zip(header, record.fields, strict=True))
        rows.append(values if current else {c: values.get(c, "") for c in COLUMNS})
    return rows, damaged


@dataclass
class _Index:
    """What this process has read of one results file: its finished rows up to byte ``end`` (just past a
    whole record), where its last record there starts and why it is damaged (None: whole), where a cut
    record after ``end`` starts (None: there is none), and what shows the file was only appended to since."""

    inode: tuple[int, int]
    header: bytes
    end: int
    before_end: bytes  # the file's bytes [end - len(before_end), end)
    rows: dict[str, dict[str, str]]
    last: tuple[int, str | None] | None = None
    cut: int | None = None


_INDEXES: dict[str, _Index] = {}
CHECKED_BYTES = 64 * 1024  # of the bytes before ``end``: all of a smaller file


def finished_rows(path: Path, warn: Callable[[str], None] | None = None) -> dict[str, dict[str, str]]:
    """The latest row of each run recorded as finished (ok or collapsed), by run id; failed runs are
    not finished, so they are retried. Damaged records are skipped with a warning naming their offset.

    A grid asks before every run, so this process remembers what it read (``_indexed``) and reads only
    what was appended since."""
    warn = warn or (lambda text: print(text, file=sys.stderr))
    index = _indexed(path, warn)
    if index is None:
        return {}
    if index.cut is not None:
        warn(f"warning: {path}: damaged record at byte {index.cut} skipped: the last line has no newline (cut off "
             "by a killed writer or a full disk)")
    return dict(index.rows)


def _indexed(path: Path, warn: Callable[[str], None]) -> _Index | None:
    """``path``'s index, brought up to date by reading what was appended since this process last read it:
    when it is the same file (device and inode), with the same header and the same bytes just before where
    reading stopped (all of them in a file under 64 KiB). A file rewritten otherwise (``migrate``, an
    editor's save, a damaged record set aside) is read whole again. None when there is no file."""
    _refuse_special(path)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SchemaError(f"cannot read results file {path}: {exc.strerror or exc}") from None
    with handle:
        stat = os.fstat(handle.fileno())
        header = handle.readline()
        key = str(path.resolve())
        index = _INDEXES.get(key)
        if index is None or not _unchanged(handle, index, (stat.st_dev, stat.st_ino), header, stat.st_size):
            index = _Index((stat.st_dev, stat.st_ino), header, 0, b"", {})
        start = index.end or len(header)
        handle.seek(start)
        _index_more(index, handle.read(stat.st_size - start), start, path, warn)
        handle.seek(max(0, index.end - CHECKED_BYTES))
        index.before_end = handle.read(index.end - max(0, index.end - CHECKED_BYTES))
    _INDEXES[key] = index
    return index


def _unchanged(handle, index: _Index, inode: tuple[int, int], header: bytes, size: int) -> bool:
    """Whether the open file is ``index``'s, only appended to since."""
    if index.inode != inode or index.header != header or size < index.end:
        return False
    handle.seek(index.end - len(index.before_end))
    return handle.read(len(index.before_end)) == index.before_end


def _index_more(index: _Index, data: bytes, start: int, path: Path, warn: Callable[[str], None]) -> None:
    """Add the records in ``data`` (the file's bytes from ``start``, a record boundary) to ``index``, up
    to its last whole record: a cut one (no newline, or a quoted field left open) is read again next
    time, as a writer may still be writing it."""
    index.end, index.cut = start, None
    if not index.header:
        return
    header = _header_of(path, index.header)
    _version(path, header)
    for record in _records(data):
        text = data[record.offset:record.end]
        if not record.terminated or (not record.fields and text.strip()):
            index.cut = start + record.offset
            return
        index.end = start + record.end
        if not record.fields:
            continue  # a blank line
        why = _damage(record, header)
        index.last = (start + record.offset, why)
        if why:
            warn(f"warning: {path}: damaged record at byte {start + record.offset} skipped: {why}")
            continue
        values = dict(zip(header, record.fields, strict=True))
        if values["status"] in FINISHED:
            index.rows[values["run_id"]] = {c: values.get(c, "") for c in COLUMNS}


# --- writing ----------------------------------------------------------------------------------------
def format_row(row: dict[str, Any]) -> dict[str, str]:
    """``row`` as the CSV's strings; ValueError (``RowError`` for a value outside its column's domain)
    for a row the file must not take."""
    unknown = sorted(set(row) - set(COLUMNS))
    if unknown:
        raise ValueError(f"row has columns outside the schema: {unknown}")
    if row.get("status") not in STATUSES:
        raise ValueError(f"row status must be one of {STATUSES}, got {row.get('status')!r}")
    out = {}
    for column in COLUMNS:
        value = row.get(column, "")
        if isinstance(value, float):
            value = repr(value)
        elif isinstance(value, bool):
            value = str(value).lower()
        elif value is None:
            value = ""
        out[column] = str(value)
    why = row_problem(out)
    if why:
        raise RowError(f"row {out['run_id'] or '(no run_id)'} not written: {why}")
    return out


def _lock(path: Path) -> FileLock:
    """The file's inter-process lock; OSError at once when its lock file cannot be made (a read-only
    folder), where filelock would wait out its timeout."""
    lock = Path(str(path) + ".lock")
    lock.touch()
    return FileLock(str(lock), timeout=LOCK_TIMEOUT_S)


def _set_aside_damaged_tail(path: Path, say: Callable[[str], None]) -> None:
    """Move a damaged last record into ``<file>.damaged`` and cut the file back to its last whole row.
    Called with the file's lock held; reads only what this process has not read of the file yet."""
    with path.open("rb") as handle:
        first = handle.readline()
    if not first.endswith(b"\n"):  # a header without its newline: complete it
        with path.open("ab") as handle:
            handle.write(b"\n")
        return
    index = _indexed(path, warn=lambda _: None)  # a damaged record is warned of where it is used, or moved here
    if index is None:
        return
    if index.cut is not None:
        start, why = index.cut, "the last line has no newline (cut off by a killed writer or a full disk)"
    elif index.last is not None and index.last[1] is not None:
        start, why = index.last
    else:
        return
    with path.open("rb") as handle:
        handle.seek(start)
        data = handle.read()
    if index.cut is not None and data.endswith(b"\n"):
        why = "a quoted field left open (a row cut off inside it)"
    aside = _keep_damaged(path, data, [(Record(0, len(data), [], data.endswith(b"\n")), why)],
                          "set aside before an append", base=start)
    with path.open("r+b") as handle:
        handle.truncate(start)
        handle.flush()
        os.fsync(handle.fileno())
    _INDEXES.pop(str(path.resolve()), None)  # read again next time: cut back, the file is not only appended to
    say(f"warning: {path}: damaged last record at byte {start} ({why}) moved to {aside}")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def append_row(path: Path, row: dict[str, Any], say: Callable[[str], None] | None = None) -> None:
    """Append one row (the header first into a new file): whole or not at all, one writer at a time."""
    say = say or (lambda text: print(text, file=sys.stderr))
    formatted = format_row(row)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writerow(formatted)
    line = buffer.getvalue().encode("utf-8")
    header = (",".join(COLUMNS) + "\n").encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _lock(path):
            check_schema(path, writable=True)
            if path.exists() and path.stat().st_size:
                _set_aside_damaged_tail(path, say)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                try:
                    _write_all(fd, line if size else header + line)
                    os.fsync(fd)
                except BaseException:  # a full disk, or a signal between two partial writes
                    os.ftruncate(fd, size)  # all or nothing: no half row stays behind
                    raise
            finally:
                os.close(fd)
    except Timeout:
        raise SchemaError(f"cannot append to {path}: its lock {path}.lock was held for {LOCK_TIMEOUT_S:.0f} s by "
                          "another process") from None
    except OSError as exc:
        raise SchemaError(f"cannot append to {path}: {exc.strerror or exc}; the row was not written and the file "
                          "is as it was") from None


def migrate(path: Path) -> str:
    """Upgrade a results file of an earlier schema version to the current one (new columns empty).
    Atomic (a temporary file renamed over it) and under the file's lock; the original is kept as
    ``<file>.v<N>.bak``, and its damaged records, which the upgraded file cannot hold, are kept as they
    were in ``<file>.damaged``. Returns a one-line summary; SchemaError (one line) when it cannot, the
    file then as it was."""
    try:
        with _lock(path):
            return _migrate(path)
    except Timeout:
        raise SchemaError(f"cannot migrate {path}: its lock {path}.lock was held for {LOCK_TIMEOUT_S:.0f} s by "
                          "another process; the file is as it was") from None
    except OSError as exc:
        raise SchemaError(f"cannot migrate {path}: {exc.strerror or exc}"
                          f"{f' ({exc.filename})' if exc.filename else ''}; the file is as it was") from None


def _migrate(path: Path) -> str:
    data = _read_bytes(path)
    version = _version(path, _header_of(path, data))
    if version == SCHEMA_VERSION:
        return f"{path} already has the current schema (v{version}); nothing to do"
    rows, damaged = _scan(data, path)
    tmp = path.with_name(f".{path.name}.migrating-{os.getpid()}")
    try:  # every write that can fail comes before the rename, so a failure leaves the file as it was
        with tmp.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
            handle.flush()
            os.fsync(handle.fileno())
        backup = path.with_name(f"{path.name}.v{version}.bak")
        if backup.exists():  # never overwrite an earlier backup
            backup = path.with_name(f"{path.name}.v{version}.{dt.datetime.now():%Y%m%d-%H%M%S}.bak")
        shutil.copy2(path, backup)
        aside = _keep_damaged(path, data, damaged, f"schema v{version}, kept by migrate")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    kept = (f"; {len(damaged)} damaged record(s) (at byte {', '.join(str(r.offset) for r, _ in damaged)}) kept as "
            f"they were in {aside}") if damaged else ""
    return (f"{path}: {len(rows)} rows upgraded from schema v{version} to v{SCHEMA_VERSION}; original kept "
            f"as {backup}{kept}")


def _keep_damaged(path: Path, data: bytes, damaged: list[tuple[Record, str]], note: str, base: int = 0) -> Path:
    """Append the bytes of ``damaged`` records of ``data`` (the bytes of the file ``path`` from offset
    ``base``) to ``<file>.damaged``, each after a comment line saying where it came from and why; returns
    that file."""
    aside = path.with_name(path.name + ".damaged")
    if not damaged:
        return aside
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    with aside.open("ab") as handle:
        for record, why in damaged:
            raw = data[record.offset:record.end]
            where = f"bytes {base + record.offset}-{base + record.end}"
            handle.write(f"# {stamp}: from {path.name} ({note}), {where}: {why}\n".encode())
            handle.write(raw + (b"" if raw.endswith(b"\n") else b"\n"))
        handle.flush()
        os.fsync(handle.fileno())
    return aside


class RunClaim:
    """A per-run inter-process lock held while a run trains: a second process running the same grid
    skips the run instead of duplicating it. Released when the process ends, however it ends."""

    def __init__(self, results: Path, rid: str):
        folder = results.with_name(f".{results.name}.claims")
        folder.mkdir(parents=True, exist_ok=True)
        self.lock = FileLock(str(folder / f"{rid}.lock"), timeout=0)

    def acquire(self, wait: bool = False) -> bool:
        """Take the claim; without ``wait``, False at once when another process holds it."""
        try:
            self.lock.acquire(timeout=-1 if wait else 0)
            return True
        except Timeout:
            return False

    def release(self) -> None:
        self.lock.release()


