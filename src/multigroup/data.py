"""From tables of texts and labels to tokenized datasets with one flat `labels` column.

Examples:

```python
>>> from datasets import Dataset
>>> from multigroup.data import infer_groups
>>> rows = Dataset.from_list([
...     {"text": "Slow queue", "score": "S2", "causes": ["wait"]},
...     {"text": "Kind staff", "score": "S5", "causes": ["staff", "wait"]},
... ])
>>> for group in infer_groups(rows, multiclass=["score"], multilabel=["causes"]):
...     print(group)
{'name': 'score', 'type': 'multiclass', 'labels': ['S2', 'S5']}
{'name': 'causes', 'type': 'multilabel', 'labels': ['staff', 'wait']}

```
"""

import csv
import json
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

from datasets import Dataset

from .configuration_multigroup import MultiGroupConfig

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
    `Row N (1-based)` for a dataset that came from no file."""
    if source is None:
        return f"Row {index + 1} (1-based)"
    if Path(source).suffix.lower() in (".jsonl", ".json", ".csv"):
        for line, _ in islice(iter_records(source), index, None):
            return f"{source}, line {line}"
    return f"{source}, row {index + 1}"


def load_table(path: str | Path) -> Dataset:
    """Read a JSONL, JSON-lines, CSV or parquet file into a `datasets.Dataset`, with errors that name the line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such file: {path}")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ValueError(f"{path}: unsupported file type {suffix!r}; use one of {list(SUPPORTED_SUFFIXES)}.")
    if suffix in (".jsonl", ".json"):
        numbered = list(iter_jsonl(path))
        if not numbered:
            raise ValueError(f"{path} is empty: it holds no records.")
        try:
            return Dataset.from_list([record for _, record in numbered])
        except Exception as error:  # arrow's type errors name no column: find it
            raise ValueError(
                f"{path}: a column holds values of mixed types: {_mixed_column(numbered) or error}; make each column "
                "one type (null is fine for a missing value)."
            ) from None
    if suffix == ".csv":
        try:
            dataset = Dataset.from_csv(str(path))
        except Exception as error:  # pandas' parse error comes wrapped, without the file: find the line
            for _ in iter_csv(path):
                pass
            raise ValueError(f"{path}: unreadable CSV ({error.__cause__ or error}).") from None
    else:
        dataset = Dataset.from_parquet(str(path))
    if len(dataset) == 0:
        raise ValueError(f"{path} is empty: it holds no records.")
    return dataset


def _mixed_column(numbered: list[tuple[int, dict]]) -> str | None:
    """The first column whose non-null values change type, and the two lines where they do."""
    first_seen: dict[str, tuple[str, int]] = {}
    for line, record in numbered:
        for column, value in record.items():
            if value is None:
                continue
            kind = (
                "number" if isinstance(value, (int, float)) and not isinstance(value, bool) else type(value).__name__
            )
            seen_kind, seen_line = first_seen.setdefault(column, (kind, line))
            if kind != seen_kind:
                return f"`{column}` is {seen_kind} on line {seen_line} but {kind} on line {line}"
    return None


def _require_columns(dataset: Dataset, columns: Iterable[str], source: str | Path | None = None) -> None:
    missing = [column for column in columns if column not in dataset.column_names]
    if missing:
        prefix = f"{source}: " if source is not None else ""
        raise ValueError(f"{prefix}Missing column(s) {missing}; the data has columns {dataset.column_names}.")


def infer_groups(
    dataset: Dataset,
    multiclass: Iterable[str] = (),
    multilabel: Iterable[str] = (),
    regression: Iterable[str] = (),
    source: str | Path | None = None,
) -> list[dict]:
    """Build the group spec from training data: one group per named column, labels sorted as strings.

    `source`: the file `dataset` was read from with `load_table`, unchanged; errors then name it and the line."""
    multiclass, multilabel, regression = list(multiclass), list(multilabel), list(regression)
    _require_columns(dataset, multiclass + multilabel + regression, source)
    groups = []
    for name in multiclass + multilabel:
        labels = set()
        for row, value in enumerate(dataset[name]):
            if value is None:
                continue
            values = [value] if name in multiclass else value
            if (name in multiclass) != isinstance(value, str) or not all(isinstance(v, str) for v in values):
                kind = "a label string" if name in multiclass else "a list of label strings"
                raise TypeError(f"{locate(row, source)}, column `{name}`: expected {kind} or null, got {value!r}.")
            labels.update(values)
        kind = "multiclass" if name in multiclass else "multilabel"
        groups.append({"name": name, "type": kind, "labels": sorted(labels)})
    groups += [{"name": name, "type": "regression"} for name in regression]
    order = {name: i for i, name in enumerate(multiclass + multilabel + regression)}
    return sorted(groups, key=lambda group: order[group["name"]])


def prepare_dataset(
    dataset: Dataset,
    tokenizer,
    config: MultiGroupConfig,
    text_column: str = "text",
    max_length: int | None = None,
    ignore_unknown_labels: bool = False,
    ignore_option: str | None = "ignore_unknown_labels=True",
    source: str | Path | None = None,
) -> Dataset:
    """Tokenize `text_column` and encode the group columns into `labels`; pad later with `DataCollatorWithPadding`.

    A row whose text is missing or not a string, or whose label is unknown, raises; with
    `ignore_unknown_labels=True` unknown labels are dropped instead (a label the training data never saw). The
    unknown-label error suggests passing `ignore_option` (the CLI names its flag; None suggests nothing).
    Group columns absent from the dataset count as missing for every row.

    `source`: the file `dataset` was read from with `load_table`, unchanged; errors then say `FILE, line N` as an
    editor numbers lines (`FILE, row N` for parquet). Without it they say `Row N (1-based)`: `dataset[N - 1]`.
    """
    _require_columns(dataset, [text_column], source)

    def encode(batch: dict, indices: list[int]) -> dict:
        texts = batch[text_column]
        for row, text in zip(indices, texts):
            if not isinstance(text, str):
                raise ValueError(
                    f"{locate(row, source)}: `{text_column}` must be a string, got {text!r}; drop or fill that row."
                )
        encoded = tokenizer(texts, truncation=True, max_length=max_length)
        labels = []
        for i, row in enumerate(indices):
            example = {name: batch[name][i] for name in config.group_names if name in batch}
            try:
                labels.append(config.encode_labels(example, ignore_unknown_labels=ignore_unknown_labels))
            except (TypeError, ValueError) as error:
                known = ignore_option and "unknown label" in str(error)
                hint = f" To drop labels the model does not know, pass {ignore_option}." if known else ""
                raise type(error)(f"{locate(row, source)}: {error}{hint}") from None
        return {**encoded, "labels": labels}

    return dataset.map(encode, batched=True, with_indices=True, remove_columns=dataset.column_names)
