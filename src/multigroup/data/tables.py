"""A file as an Arrow-backed `datasets.Dataset` (`load_table`): JSONL, JSON, CSV or parquet, read in chunks, larger
than memory; mixed column types and CSV list cells named by line.
"""

import json
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset

from .readers import SUPPORTED_SUFFIXES, iter_csv, iter_jsonl, locate


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
