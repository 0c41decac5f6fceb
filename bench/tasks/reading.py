"""Reading a labelled file, validated before any training: its header, field counts, labels (integers in
the task's classes) and texts (not blank), every problem a one-line ``TaskError`` naming the file and line."""

from __future__ import annotations

import csv
from pathlib import Path

from bench.tasks.spec import TaskError

MIN_SPLIT = 2  # a split needs every class, so at least two examples for a binary task


LISTED = 5  # problems spelled out per kind in an error; the rest are counted


def _accepted(num_labels: int) -> str:
    return ", ".join(str(c) for c in range(num_labels))


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def _some(items: list[str], sep: str) -> str:
    """The first LISTED items joined by ``sep``, then how many more there are."""
    shown = sep.join(items[:LISTED])
    return shown if len(items) <= LISTED else f"{shown}{sep.rstrip()} and {len(items) - LISTED:,} more"


def _fail(source: str, clauses: list[str], unit: str) -> TaskError:
    body = "; ".join(clauses)
    return TaskError(f"{source} {body}" if body.startswith(f"{unit} ") else f"{source}: {body}")


def _validated(source: str, records: list[tuple[int, str, str | int]], num_labels: int, text_name: str,
               unit: str = "line", shape: list[str] | None = None) -> tuple[list[str], list[int]]:
    """Check ``(number, text, raw label)`` records: every label an integer in range(num_labels), every
    text non-blank. Raises one TaskError listing every problem of ``source`` (``shape`` adds problems
    the reader found); returns the texts and integer labels."""
    texts, labels, bad, empty = [], [], [], []
    for number, text, raw in records:
        try:
            label = int(raw)
        except (TypeError, ValueError):
            bad.append(f"{unit} {number}: label {raw!r} is not an integer")
        else:
            if not 0 <= label < num_labels:
                bad.append(f"{unit} {number}: label {label} outside the task's classes")
            labels.append(label)
        if not text.strip():
            empty.append(str(number))
        texts.append(text)
    clauses = [_some(shape, "; ")] if shape else []
    if bad:
        clauses.append(f"{_some(bad, '; ')}; accepted: {_accepted(num_labels)}")
    if empty:
        where = f"{unit}s {_some(empty, ', ')}" if len(empty) > 1 else f"{unit} {empty[0]}"
        clauses.append(f"{_plural(len(empty), 'example')} with an empty '{text_name}' ({where}); "
                       "accepted: text with at least one non-space character")
    if clauses:
        raise _fail(source, clauses, unit)
    return texts, labels


def _not_utf8(path: Path) -> str:
    """Name the first line of ``path`` that is not UTF-8 (a newline byte never occurs inside a UTF-8
    character, so splitting the bytes on it is safe)."""
    bad = []
    for number, line in enumerate(path.read_bytes().split(b"\n"), 1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad.append((number, line[exc.start], exc.start + 1))
    if not bad:
        return f"{path}: not UTF-8 text; accepted: UTF-8, fix: re-save the file as UTF-8"
    number, byte, column = bad[0]
    more = f" (and {_plural(len(bad) - 1, 'more line')})" if len(bad) > 1 else ""
    return (f"{path} line {number}: byte 0x{byte:02x} (byte {column} of the line) is not UTF-8{more}; "
            "accepted: UTF-8 text, fix: re-save the file as UTF-8")


def read_labelled(path: Path, text_column: str, num_labels: int, delimiter: str = "\t",
                  keep: tuple[str, str] | None = None) -> tuple[list[str], list[int]]:
    """Read a labelled text file with a header line (GLUE TSV, or CSV with ``delimiter=","``) and
    return its texts and labels, validated: the header has ``text_column`` and ``label``, every row has
    the header's number of fields, every label is an integer in range(num_labels), no text is blank.
    ``keep=(column, value)`` reads only the rows whose ``column`` holds ``value``. Any problem raises
    one TaskError naming the file and its physical line numbers (the header is line 1)."""
    needed = [text_column, "label"] + ([keep[0]] if keep else [])
    # GLUE TSVs are written without quoting: a quote character is part of the sentence
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    records: list[tuple[int, str, str | int]] = []
    shape: list[str] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, delimiter=delimiter, quoting=quoting)
            header = [name.strip() for name in next(reader, [])]
            if not header:
                raise TaskError(f"{path}: empty, no header line; needed: a header with columns {', '.join(needed)}")
            missing = [name for name in needed if name not in header]
            if missing:
                raise TaskError(f"{path} line 1: the header lacks {', '.join(missing)}; found: {', '.join(header)}; "
                                f"needed: {', '.join(needed)}")
            at = {name: header.index(name) for name in needed}
            start = reader.line_num + 1
            for row in reader:
                number, start = start, reader.line_num + 1  # a quoted CSV field may span several lines
                if not row:
                    continue
                if len(row) != len(header):
                    shape.append(f"line {number}: {_plural(len(row), 'field')}, the header has {len(header)}")
                elif keep is None or row[at[keep[0]]] == keep[1]:
                    records.append((number, row[at[text_column]], row[at["label"]]))
    except UnicodeDecodeError:
        raise TaskError(_not_utf8(path)) from None
    except csv.Error as exc:
        kind = "TSV" if delimiter == "\t" else "CSV"
        raise TaskError(f"{path} line {reader.line_num}: not readable as {kind} ({exc})") from None
    except OSError as exc:
        raise TaskError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    return _validated(str(path), records, num_labels, text_column, shape=shape)
