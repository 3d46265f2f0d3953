"""Labelled files read row by row with their line numbers (JSONL, CSV), and where a row sits in its file."""

import csv
import json
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

SUPPORTED_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield `(line_number, record)` from a JSONL file, without reading it all; blank lines are skipped."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"{path}, line {number}: malformed JSON ({error.msg}); fix or remove that line."
                ) from None
            if not isinstance(record, dict):
                raise ValueError(
                    f"{path}, line {number}: expected a JSON object per line, got {type(record).__name__}."
                )
            yield number, record


def iter_csv(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield `(line_number, record)` from a CSV file with a header line, without reading it all: the line each
    record starts on, right when a quoted field spans lines; blank lines are skipped, missing fields are None."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        while True:
            start = reader.line_num + 1
            row = next(reader, None)
            if row is None:
                return
            if not row:
                continue
            if len(row) > len(header):
                raise ValueError(
                    f"{path}, line {start}: {len(row)} fields but the header has {len(header)}; quote any field "
                    'that holds a comma ("a, b").'
                )
            yield start, {**dict.fromkeys(header), **dict(zip(header, row))}


def iter_records(path: str | Path) -> Iterator[tuple[int, dict]]:
    """`(line_number, record)` pairs of a JSONL (or JSON-lines .json) or CSV file, one at a time."""
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".json"):
        return iter_jsonl(path)
    if suffix == ".csv":
        return iter_csv(path)
    raise ValueError(f"{path}: expected a .jsonl or .csv file, got {suffix!r}.")


def locate(index: int, source: str | Path | None = None) -> str:
    """How a message names record `index` (0-based) of a table: `FILE, line N` as an editor shows it for a JSONL
    or CSV file read with `load_table` (the line the record starts on), `FILE, row N` for parquet, and
    `Row N (1-based)` for a dataset that came from no file. Only errors call it: it reads the file up to that
    record (a JSONL file's lines are counted, not parsed)."""
    if source is None:
        return f"Row {index + 1} (1-based)"
    suffix = Path(source).suffix.lower()
    if suffix in (".jsonl", ".json"):
        with open(source, "rb") as handle:  # the records are its non-blank lines, as for iter_jsonl and Arrow
            records = (number for number, line in enumerate(handle, start=1) if line.strip())
            for line in islice(records, index, None):
                return f"{source}, line {line}"
    if suffix == ".csv":
        for line, _ in islice(iter_csv(source), index, None):
            return f"{source}, line {line}"
    return f"{source}, row {index + 1}"
