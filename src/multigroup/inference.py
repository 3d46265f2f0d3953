"""Batched inference to logits, texts sorted by length so that each batch pads little."""

from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm


@torch.inference_mode()
def batched_logits(
    model,
    tokenizer,
    texts: Sequence[str],
    batch_size: int = 32,
    max_length: int | None = None,
    progress: bool = False,
    read_ahead: int | None = None,
) -> np.ndarray:
    """The `(len(texts), num_columns)` logits, in input order.

    `read_ahead`: batches tokenized ahead in a background thread while the model runs; by default as the pipeline
    (`READ_AHEAD` on an accelerator, none on CPU, where the forward already keeps the cores busy)."""
    from .hub_code import batching_multigroup as batching

    model.eval()
    logits = np.zeros((len(texts), model.config.num_columns), dtype=np.float32)
    device = next(model.parameters()).device
    max_length = max_length or min(tokenizer.model_max_length, model.config.max_tokens)

    def encoded():
        for indices in batching.length_batches(texts, batch_size):
            batch = [texts[i] for i in indices]
            yield indices, tokenizer(batch, padding=True, truncation=True, max_length=max_length, return_tensors="pt")

    batches = batching.read_ahead(encoded(), batching.batches_ahead(read_ahead, device))
    for indices, batch in tqdm(batches, total=-(-len(texts) // batch_size), disable=not progress, desc="batches"):
        logits[indices] = model(**batch.to(device)).logits.float().cpu().numpy()
    return logits


def prediction_columns(rows: Sequence[dict]) -> dict[str, list]:
    """The pipeline's predictions as columns, for `datasets.Dataset.map(..., batched=True)` or a DataFrame.

    A multiclass group gives `<group>` (its label) and `<group>_score`; a multilabel group (or any group asked with
    `top_k` other than 1) `<group>` (a list of labels, best first) and `<group>_scores`; a regression group
    `<group>` (its value).

    ```python
    >>> columns = prediction_columns([{"polarity": {"label": "positive", "score": 0.9},
    ...                                "aspects": [{"label": "food", "score": 0.8}], "stars": {"value": 4.5}}])
    >>> columns["polarity"], columns["polarity_score"], columns["aspects"], columns["aspects_scores"], columns["stars"]
    (['positive'], [0.9], [['food']], [[0.8]], [4.5])

    ```
    """
    columns: dict[str, list] = {}
    for row in rows:
        for group, prediction in row.items():
            if isinstance(prediction, list):
                cells = {group: [p["label"] for p in prediction], f"{group}_scores": [p["score"] for p in prediction]}
            elif "value" in prediction:
                cells = {group: prediction["value"]}
            else:
                cells = {group: prediction["label"], f"{group}_score": prediction["score"]}
            for name, value in cells.items():
                columns.setdefault(name, []).append(value)
    return columns


def prediction_table(
    config, logits, top_k: int | None = 1, threshold: float | dict | None = None, groups: list[str] | None = None
):
    """`config.decode(logits, top_k, threshold, groups)` as a `pyarrow.Table` in the schema of
    `prediction_columns` (types: `prediction_schema`), built from the decision tensors (`config.group_predictions`)
    with no Python object per label: the bulk output of `multigroup predict --output FILE.parquet`. Other `top_k`
    than 1 go through `decode`, as lists.

    ```python
    >>> from multigroup import MultiGroupConfig
    >>> config = MultiGroupConfig(groups=[{"name": "polarity", "type": "multiclass", "labels": ["neg", "pos"]},
    ...                                   {"name": "aspects", "type": "multilabel", "labels": ["food", "price"]}])
    >>> prediction_table(config, [[0.0, 2.0, 3.0, 1.0], [1.0, 0.0, -3.0, -1.0]]).to_pydict()["aspects"]
    [['food', 'price'], []]

    ```
    """
    import pyarrow as pa

    from .hub_code.decoding_multigroup import _ranked

    schema = prediction_schema(config, top_k, groups)
    if top_k != 1 or len(logits) == 0:  # decode checks the options
        rows = config.decode(logits, top_k=top_k, threshold=threshold, groups=groups)
        return pa.table(prediction_columns(rows), schema=schema) if rows else schema.empty_table()
    config.check_options(groups=groups)
    decided = config.group_predictions(logits, threshold)
    columns = {}
    for group in config.groups:
        if groups is not None and group["name"] not in groups:
            continue
        name, part = group["name"], decided[group["name"]]
        labels = pa.array(group["labels"], pa.string())
        if group["type"] == "regression":
            columns[name] = pa.array(part["values"].numpy())
        elif group["type"] == "multiclass":
            index = part["index"][:, None]
            columns[name] = labels.take(pa.array(index.squeeze(1).numpy()))
            columns[f"{name}_score"] = pa.array(part["scores"].gather(-1, index).squeeze(1).numpy())
        else:  # the labels that passed, best first, as one flat run of values cut into rows by offsets
            scores, order = _ranked(part["scores"])
            kept = part["selected"].gather(-1, order).numpy()
            offsets = pa.array(np.concatenate([[0], kept.sum(-1).cumsum()]).astype(np.int32))
            columns[name] = pa.ListArray.from_arrays(offsets, labels.take(pa.array(order.numpy()[kept])))
            columns[f"{name}_scores"] = pa.ListArray.from_arrays(offsets, pa.array(scores.numpy()[kept]))
    return pa.table(columns, schema=schema)


def prediction_schema(config, top_k: int | None = 1, groups: list[str] | None = None):
    """The `pyarrow.Schema` of `prediction_table`: the columns and types the predictions of `config` take."""
    import pyarrow as pa

    fields = []
    for group in config.groups:
        name = group["name"]
        if groups is not None and name not in groups:
            continue
        if group["type"] == "regression":
            fields.append((name, pa.float32()))
        elif group["type"] == "multiclass" and top_k == 1:
            fields += [(name, pa.string()), (f"{name}_score", pa.float32())]
        else:
            fields += [(name, pa.list_(pa.string())), (f"{name}_scores", pa.list_(pa.float32()))]
    return pa.schema(fields)
