"""The label groups of a table (`infer_groups`), its label matrix, and `prepare_dataset`: tokenized texts and one flat
`labels` column.
"""

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset

from ..hub_code.configuration_multigroup import MultiGroupConfig, UnknownLabelError
from .readers import locate
from .tables import CSV_LISTS, _has_json


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


def labelled_file(
    file: str | Path,
    tokenizer,
    config: MultiGroupConfig,
    text_column: str = "text",
    unknown_labels: str = "miss",
) -> tuple[list[str], np.ndarray, dict[str, int]]:
    """The texts, label matrix and, per multilabel group, the count of gold labels the model has no column for, of
    a labelled file a model is scored on (never fitting a new head's priors to it).

    `unknown_labels="miss"` drops those labels from the matrix and counts them (pass the counts as
    `compute_metrics(..., missed=...)` to score them as misses, as SemEval's scorer does); `"error"` raises at the
    first, naming its line (an `UnknownLabelError`: a command gives it its own flag with `with_fix`).
    """
    from ..metrics import unseen_label_counts
    from .tables import load_table

    if unknown_labels not in ("miss", "error"):
        raise ValueError(f"unknown_labels must be 'miss' or 'error', got {unknown_labels!r}.")
    table = load_table(file)
    ignore = unknown_labels == "miss"
    try:
        encoded = prepare_dataset(
            table, tokenizer, config, text_column, ignore_unknown_labels=ignore, source=file, training=False
        )
    except UnknownLabelError as error:
        raise error.with_fix("To drop labels the model does not know, pass unknown_labels='miss'.") from None
    missed = unseen_label_counts(config, table) if ignore else {}
    return table[text_column], label_matrix(encoded), missed


def prepare_dataset(
    dataset: Dataset,
    tokenizer,
    config: MultiGroupConfig,
    text_column: str = "text",
    max_length: int | None = None,
    ignore_unknown_labels: bool = False,
    source: str | Path | None = None,
    training: bool = True,
) -> Dataset:
    """Tokenize `text_column` and encode the group columns into `labels`; pad later with `DataCollatorWithPadding`.

    A row whose text is missing or not a string, or whose label is unknown, raises; with
    `ignore_unknown_labels=True` unknown labels are dropped instead (a label the training data never saw). An
    unknown label raises `UnknownLabelError`, whose fix suggests that argument (a command names its own flag
    instead: `error.with_fix(...)`).
    Group columns absent from the dataset count as missing for every row.

    `source`: the file `dataset` was read from with `load_table`, unchanged; errors then say `FILE, line N` as an
    editor numbers lines (`FILE, row N` for parquet). Without it they say `Row N (1-based)`: `dataset[N - 1]`.

    For a new head (`config.fit_priors`), the labels of training data also set each group's `prior`
    (`fit_label_priors`) and, where the config was given no `relations`, the relations that hold on every row
    (`multigroup.relations.infer_relations`): pass the training data first, and `training=False` for data the model
    is scored on.

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
            except UnknownLabelError as error:
                fix = "To drop labels the model does not know, pass ignore_unknown_labels=True."
                raise UnknownLabelError(f"{locate(row, source)}: {error.message}", fix) from None
            except (TypeError, ValueError) as error:
                raise type(error)(f"{locate(row, source)}: {error}") from None
        return {**encoded, "labels": labels}

    prepared = dataset.map(encode, batched=True, with_indices=True, remove_columns=dataset.column_names)
    if training and config.fit_priors:  # a new head's first data, its training data: what its labels tell it
        from ..hub_code.relations_multigroup import normalize_relations
        from ..relations import infer_relations
        from ..training import fit_label_priors

        if config.relations is None:  # not given: those that hold on every training row
            config.relations = normalize_relations(infer_relations(dataset, config.groups), config.groups)
        fit_label_priors(config, label_matrix(prepared))
    return prepared
