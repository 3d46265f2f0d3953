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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset

from .hub_code.configuration_multigroup import MultiGroupConfig

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


def load_table(path: str | Path, cache_dir: str | Path | None = None) -> Dataset:
    """Read a JSONL, JSON-lines, CSV or parquet file into a `datasets.Dataset`, with errors that name the line.

    The file is read once, by `datasets`' own loaders, into an Arrow file in `cache_dir` (default: the `datasets`
    cache, `HF_DATASETS_CACHE`) that the dataset memory-maps: a file larger than memory loads, and loading the
    same unchanged file again reads the cache instead. Only on an error is the file scanned again, line by line,
    to name the line (malformed JSON, a line that is not an object, a column whose values change type)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such file: {path}")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ValueError(f"{path}: unsupported file type {suffix!r}; use one of {list(SUPPORTED_SUFFIXES)}.")
    cache_dir = None if cache_dir is None else str(cache_dir)
    if suffix in (".jsonl", ".json"):
        dataset = _load_json_lines(path, cache_dir)
    elif suffix == ".csv":
        try:
            dataset = Dataset.from_csv(str(path), cache_dir=cache_dir)
        except Exception as error:  # pandas' parse error comes wrapped, without the file: find the line
            for _ in iter_csv(path):
                pass
            raise ValueError(f"{path}: unreadable CSV ({error.__cause__ or error}).") from None
        dataset = _csv_lists(dataset, path)
    else:
        dataset = Dataset.from_parquet(str(path), cache_dir=cache_dir)
    if len(dataset) == 0:
        raise ValueError(f"{path} is empty: it holds no records.")
    return dataset


CSV_LISTS = "a JSON list in the cell, `[\"wait\", \"staff\"]` (pandas' `to_csv` writes `['wait', 'staff']`, read too)"


def _csv_lists(dataset: Dataset, path: Path) -> Dataset:
    """A CSV cell holds text only: a column whose every non-empty cell is written as a list (`CSV_LISTS`; `[]` for
    no labels, an empty cell for a missing group) becomes a list column, as a JSONL file would give it."""
    lists = []
    for name in dataset.column_names:
        column = dataset.data.column(name)
        text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
        if not text or column.null_count == len(column):
            continue
        cells = pc.utf8_trim_whitespace(column)
        if pc.all(pc.and_(pc.starts_with(cells, "["), pc.ends_with(cells, "]"))).as_py():  # nulls are skipped
            lists.append(name)
    if not lists:
        return dataset

    def parse(batch: dict, indices: list[int]) -> dict:
        return {name: [_csv_list(cell, path, i, name) for cell, i in zip(batch[name], indices)] for name in lists}

    from datasets import Sequence, Value

    features = dataset.features.copy()
    features.update({name: Sequence(Value("string")) for name in lists})
    return dataset.map(parse, batched=True, with_indices=True, features=features, desc=None)


def _csv_list(cell: str | None, path: Path, index: int, column: str) -> list[str] | None:
    import ast

    if cell is None:
        return None
    try:
        value = json.loads(cell)
    except json.JSONDecodeError:
        try:
            value = ast.literal_eval(cell.strip())
        except (ValueError, SyntaxError):
            value = None
    if not isinstance(value, list) or not all(isinstance(label, str) for label in value):
        raise ValueError(
            f"{locate(index, path)}, column `{column}`: {cell!r} is not a list of label strings; write {CSV_LISTS}."
        )
    return value


_JSON_CHUNK_BYTES = 10 << 20  # a JSONL file is parsed this many bytes at a time (datasets' default)


class _SchemaDrift(Exception):
    """A chunk of a JSONL file has a column of another type than the chunks before it had (or a new column)."""


def _json_lines_builder():
    """`datasets`' JSON builder, made stricter for JSON lines. It takes the columns' types from the file's first
    10 MB and casts every later chunk to them, which turns a later list or number into its JSON text silently and
    fails on a column that was null, or absent, in the first chunk; this one raises `_SchemaDrift` instead, so
    that `load_table` can name the mixed lines or read the types from the whole file. And it never reads the whole
    file into memory at once (the stock builder's retry of a chunk it cannot parse)."""
    import inspect

    from datasets.packaged_modules.json.json import Json

    full_read_option = "allow_full_read" in inspect.signature(Json._generate_tables).parameters

    class MultigroupJsonLines(Json):
        def _generate_tables(self, *args, **kwargs):
            if full_read_option:
                kwargs["allow_full_read"] = False
            return super()._generate_tables(*args, **kwargs)

        def _cast_table(self, pa_table, *args, **kwargs):
            features = self.info.features
            if features is not None and not _has_json(features):
                target = features.arrow_schema
                for field in pa_table.schema:
                    if field.name not in target.names or not _fits(field.type, target.field(field.name).type):
                        raise _SchemaDrift(field.name)
            return super()._cast_table(pa_table, *args, **kwargs)

    return MultigroupJsonLines


def _fits(actual, expected) -> bool:
    """Whether Arrow values of type `actual` cast to `expected` without loss: nulls, ints to floats, and lists
    and structs made of such."""
    if actual == expected or pa.types.is_null(actual):
        return True
    if pa.types.is_integer(actual):
        return pa.types.is_floating(expected)
    lists = (pa.types.is_list, pa.types.is_large_list)
    if any(test(actual) for test in lists) and any(test(expected) for test in lists):
        return _fits(actual.value_type, expected.value_type)
    if pa.types.is_struct(actual) and pa.types.is_struct(expected):
        names = [expected.field(i).name for i in range(expected.num_fields)]
        return all(
            field.name in names and _fits(field.type, expected.field(field.name).type)
            for field in (actual.field(i) for i in range(actual.num_fields))
        )
    return False


def _has_json(feature) -> bool:
    """Whether a feature is, or holds, `datasets.Json`: values of mixed types that the JSON loader kept as JSON."""
    if type(feature).__name__ == "Json":
        return True
    if isinstance(feature, dict):
        return any(_has_json(value) for value in feature.values())
    if isinstance(feature, (list, tuple)):
        return any(_has_json(value) for value in feature)
    inner = getattr(feature, "feature", None)
    return inner is not None and _has_json(inner)


def _build_json(path: Path, cache_dir: str | None, features=None) -> Dataset:
    import dataclasses

    builder_class = _json_lines_builder()
    known = {field.name for field in dataclasses.fields(builder_class.BUILDER_CONFIG_CLASS)}
    options = {"chunksize": _JSON_CHUNK_BYTES, "parse_agent_traces": False}  # columns are columns, whatever names
    options = {key: value for key, value in options.items() if key in known}
    builder = builder_class(
        cache_dir=cache_dir,
        dataset_name="multigroup_jsonl",  # its folder in the cache
        data_files={"train": str(path.resolve())},
        features=features,
        **options,
    )
    builder.download_and_prepare()
    return builder.as_dataset(split="train", in_memory=False)


def _load_json_lines(path: Path, cache_dir: str | None) -> Dataset:
    if next(iter_jsonl(path), None) is None:  # and line 1's errors as iter_jsonl words them (a JSON array, say)
        raise ValueError(f"{path} is empty: it holds no records.")
    try:
        dataset = _build_json(path, cache_dir)
    except Exception as error:
        _raise_mixed_types(path)  # or the first line that is malformed or not an object: iter_jsonl's error
        if not _caused_by(error, _SchemaDrift):
            raise ValueError(f"{path}: unreadable JSON lines ({error.__cause__ or error}).") from None
        # A column null or absent in the first chunk, or ints then floats: the types of all chunks, then read again.
        return _build_json(path, cache_dir, features=_json_features(path))
    if _has_json(dataset.features):  # mixed types within the first chunk, kept as JSON text by the loader
        _raise_mixed_types(path)
    return dataset


def _caused_by(error: BaseException | None, kind: type) -> bool:
    while error is not None:
        if isinstance(error, kind):
            return True
        error = error.__cause__ or error.__context__
    return False


def _raise_mixed_types(path: Path) -> None:
    """Raise, naming the column and two lines, if a column's non-null values change type in the file (and naming
    the first line that is malformed or not an object, as `iter_jsonl` does)."""
    mixed = _mixed_column(iter_jsonl(path))
    if mixed is not None:
        raise ValueError(
            f"{path}: a column holds values of mixed types: {mixed}; make each column one type (null is fine for a "
            "missing value)."
        ) from None


def _json_features(path: Path):
    """The columns' types over the whole JSONL file, read chunk by chunk with pyarrow: nulls and ints give way."""
    import io

    import pyarrow.json as paj
    from datasets import Features

    schemas = []
    with open(path, "rb") as handle:
        while chunk := handle.read(_JSON_CHUNK_BYTES):
            chunk += handle.readline()
            schemas.append(paj.read_json(io.BytesIO(chunk)).schema)
    try:
        schema = pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise ValueError(
            f"{path}: a column holds values of mixed types ({error}); make each column one type (null is fine for "
            "a missing value)."
        ) from None
    return Features.from_arrow_schema(schema)


def _mixed_column(numbered: Iterable[tuple[int, dict]]) -> str | None:
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


_BATCH_ROWS = 100_000  # rows of a column read at a time by infer_groups and label_matrix


def infer_groups(
    dataset: Dataset,
    multiclass: str | Iterable[str] = (),
    multilabel: str | Iterable[str] = (),
    regression: str | Iterable[str] = (),
    source: str | Path | None = None,
) -> list[dict]:
    """Build the group spec from training data: one group per named column, labels sorted as strings.

    Each of `multiclass`, `multilabel` and `regression` is one column name or a list of them. The labels are
    collected on the Arrow table, a batch of rows at a time (`pyarrow.compute.unique`): the columns never become
    Python lists, so a table larger than memory works.

    `source`: the file `dataset` was read from with `load_table`, unchanged; errors then name it and the line."""
    multiclass, multilabel, regression = ([names] if isinstance(names, str) else list(names)
                                          for names in (multiclass, multilabel, regression))  # fmt: skip
    _require_columns(dataset, multiclass + multilabel + regression, source)
    groups = []
    for name in multiclass + multilabel:
        labels = _labels_in(dataset, name, name in multiclass, source)
        kind = "multiclass" if name in multiclass else "multilabel"
        groups.append({"name": name, "type": kind, "labels": sorted(labels)})
    groups += [{"name": name, "type": "regression"} for name in regression]
    order = {name: i for i, name in enumerate(multiclass + multilabel + regression)}
    return sorted(groups, key=lambda group: order[group["name"]])


def _labels_in(dataset: Dataset, name: str, multiclass: bool, source: str | Path | None) -> set[str]:
    """The labels of column `name`; a value of the wrong type raises, naming its line (or row)."""

    def strings(arrow_type) -> bool:
        return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or pa.types.is_null(arrow_type)

    def check(values: list, start: int) -> set[str]:  # the rows as Python values, for the exact error
        found = set()
        for row, value in enumerate(values, start=start):
            if value is None:
                continue
            labels = [value] if multiclass else value
            if multiclass != isinstance(value, str) or not all(isinstance(label, str) for label in labels):
                kind = "a label string" if multiclass else "a list of label strings"
                hint = ""
                if not multiclass and source is not None and Path(source).suffix.lower() == ".csv":
                    hint = f" In a CSV file, write {CSV_LISTS}; or use JSONL or parquet."
                raise TypeError(
                    f"{locate(row, source)}, column `{name}`: expected {kind} or null, got {value!r}.{hint}"
                )
            found.update(labels)
        return found

    column = dataset.select_columns([name])
    found: set[str] = set()
    if _has_json(dataset.features[name]):  # stored as JSON text: decode it
        for start in range(0, len(column), _BATCH_ROWS):
            found |= check(column[start : start + _BATCH_ROWS][name], start)
        return found
    start = 0
    for batch in column.with_format("arrow").iter(batch_size=_BATCH_ROWS):
        values, arrow_type = batch.column(0), batch.column(0).type
        if not multiclass and (pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type)):
            values, arrow_type = pc.list_flatten(values), arrow_type.value_type
            fast = strings(arrow_type) and values.null_count == 0  # a null inside a list is an error
        else:
            fast = strings(arrow_type) and (multiclass or pa.types.is_null(arrow_type))
        if fast:
            found.update(label for label in pc.unique(values).to_pylist() if label is not None)
        else:
            found |= check(batch.column(0).to_pylist(), start)
        start += batch.num_rows
    return found


def label_matrix(dataset: Dataset, column: str = "labels") -> np.ndarray:
    """The label rows of a dataset made by `prepare_dataset`, as one float32 matrix (rows x label columns), read
    from the Arrow column a batch at a time: no Python list of rows."""
    matrix = None
    start = 0
    for batch in dataset.select_columns([column]).with_format("arrow").iter(batch_size=_BATCH_ROWS):
        for chunk in batch.column(0).chunks:
            if not len(chunk):
                continue
            rows = chunk.flatten().to_numpy(zero_copy_only=False).reshape(len(chunk), -1)
            if matrix is None:
                matrix = np.empty((len(dataset), rows.shape[1]), dtype=np.float32)
            matrix[start : start + len(chunk)] = rows
            start += len(chunk)
    return matrix if matrix is not None else np.zeros((0, 0), dtype=np.float32)


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

    For a new head (`config.fit_priors`), the labels also set each group's `prior` (`fit_label_priors`): pass the
    training data first.

    On a table read with `load_table` the result is an Arrow file beside the table's, in the cache, written a batch
    at a time: the same file, tokenizer and groups are tokenized once, and a later run reads it back.
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

    prepared = dataset.map(encode, batched=True, with_indices=True, remove_columns=dataset.column_names)
    if config.fit_priors:  # a new head's first data, its training data: where its logits start
        from .training import fit_label_priors

        fit_label_priors(config, label_matrix(prepared))
    return prepared
