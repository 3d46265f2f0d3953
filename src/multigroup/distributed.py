"""Batch prediction on an engine that spreads batches over machines: Ray Data and Apache Spark.

`MultiGroupPredictor` is a callable class, built once per worker: it loads the model (a saved folder, a Hub id or
an ONNX folder) and turns each batch the engine hands over into the same batch with every input column kept and
each group's prediction added as columns (the schema of `multigroup.inference.prediction_columns`). The engine does
the rest: reading, scheduling, retries, writing.

```python
import ray
from multigroup.distributed import MultiGroupPredictor

(ray.data.read_json("reviews.jsonl")
    .map_batches(MultiGroupPredictor, fn_constructor_kwargs={"model": "you/your-model"}, concurrency=4,
                 batch_size=64)
    .write_parquet("predictions/"))
```

Spark, with `mapInPandas` (`spark_schema` gives the schema Spark asks for: the input's columns and the predictions'):

```python
def predict(batches):  # runs on the executors: one model per Python worker, for all its batches
    predictor = MultiGroupPredictor("you/your-model", batch_size=32, threads=1)
    return map(predictor, batches)

df.mapInPandas(predict, spark_schema("you/your-model", df.schema)).write.parquet("predictions/")
```
"""

from pathlib import Path
from typing import Any

ERROR_COLUMN = "error"  # with on_error="skip": why a row got no prediction (null for the rows predicted)


class MultiGroupPredictor:
    """Predict every group for a batch of rows: a dict of numpy arrays, a pandas DataFrame or a pyarrow Table in,
    the same kind out, every input column kept and each group's prediction added.

    Added columns: a multiclass group `<group>` (its label) and `<group>_score`; a multilabel group (or any
    classification group with `top_k` other than 1) `<group>` (labels, best first) and `<group>_scores`; a
    regression group `<group>` (its value). With `on_error="skip"`, also `error`.

    Args:
        model: a saved multigroup folder, its Hub id, or a folder written by `multigroup export onnx` (run with
            ONNX Runtime; `int8=True` for its int8 graph).
        batch_size: texts per forward pass (texts are sorted by length within the engine's batch).
        groups, top_k, threshold: as the pipeline's; checked here, before any batch.
        text_column: the column holding the texts.
        on_error: a text that is null or not a string: "fail" raises a ValueError naming its row; "skip" keeps the
            row with null predictions and the reason in the `error` column.
        device: "cpu" (default), "cuda", "cuda:1", ... (PyTorch models).
        threads: torch (or ONNX Runtime) threads of this worker; default: the library's own choice.
    """

    def __init__(
        self,
        model: str | Path,
        *,
        batch_size: int = 32,
        groups: list[str] | None = None,
        top_k: int | None = 1,
        threshold: float | dict | None = None,
        text_column: str = "text",
        on_error: str = "fail",
        device: str = "cpu",
        int8: bool = False,
        threads: int | None = None,
    ):
        if on_error not in ("fail", "skip"):
            raise ValueError(f'`on_error` must be "fail" or "skip", got {on_error!r}.')
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}.")
        self.batch_size, self.text_column, self.on_error = batch_size, text_column, on_error
        self.options = {"top_k": top_k, "threshold": threshold, "groups": groups}
        self.model, self.config, self._logits = str(model), *_load(model, device, int8, threads, batch_size)
        self.config.check_options(**self.options)

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        from .inference import prediction_table

        texts = _column(batch, self.text_column)
        good = [i for i, text in enumerate(texts) if isinstance(text, str)]
        if len(good) < len(texts) and self.on_error == "fail":
            row = next(i for i, text in enumerate(texts) if not isinstance(text, str))
            raise ValueError(
                f"Row {row} of this batch: `{self.text_column}` must be a string, got {texts[row]!r}. Fix or drop "
                'such rows, or pass on_error="skip" to keep them with null predictions and the reason in `error`.'
            )
        predicted = prediction_table(self.config, self._logits([texts[i] for i in good]), **self.options)
        if len(good) < len(texts):  # the skipped rows' predictions are nulls
            where = [None] * len(texts)
            for position, i in enumerate(good):
                where[i] = position
            predicted = predicted.take(pa.array(where, pa.int64()))
        if self.on_error == "skip":
            predicted = predicted.append_column(
                ERROR_COLUMN, pa.array(text_errors(texts, self.text_column), pa.string())
            )
        return _with_columns(batch, predicted)


def text_errors(texts: list, text_column: str) -> list[str | None]:
    """Why each row gets no prediction (its text is null or not a string), or None where it gets one."""
    return [None if isinstance(text, str) else f"`{text_column}` must be a string, got {text!r}" for text in texts]


def spark_schema(model: str | Path, input_schema: Any, top_k: int | None = 1, groups=None, on_error="fail") -> Any:
    """The Spark schema (`StructType`) of `MultiGroupPredictor`'s output for `input_schema`: the input's fields,
    then the prediction columns, read from the model's config (no weights loaded)."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import from_arrow_schema
    from pyspark.sql.types import StructType

    from .inference import prediction_schema

    schema = prediction_schema(model_config(model), top_k, groups)
    if on_error == "skip":
        schema = schema.append(pa.field(ERROR_COLUMN, pa.string()))
    return StructType(list(input_schema.fields) + list(from_arrow_schema(schema).fields))


def model_config(model: str | Path):
    """The `MultiGroupConfig` of a saved folder, Hub id or ONNX folder, without its weights."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(model, trust_remote_code=True)


def _load(model: str | Path, device: str, int8: bool, threads: int | None, batch_size: int):
    """The config and a `texts -> logits` function: ONNX Runtime for an exported folder, else PyTorch."""
    from .hub_code.onnx_multigroup import ONNX_FILE

    if (Path(model) / ONNX_FILE).is_file():
        from .onnx import OnnxMultiGroupClassifier

        runner = OnnxMultiGroupClassifier(model, quantized=int8, threads=threads)
        return runner.config, lambda texts: runner.logits(texts, batch_size)
    if int8:
        raise ValueError(f"int8=True runs an ONNX folder's int8 graph; {model} is not one (export it first).")
    import torch
    from transformers import AutoTokenizer

    from .auto import AutoModelForMultiGroupClassification
    from .inference import batched_logits

    if threads:
        torch.set_num_threads(threads)
    loaded = AutoModelForMultiGroupClassification.from_pretrained(model).to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(model)
    return loaded.config, lambda texts: batched_logits(loaded, tokenizer, texts, batch_size)


def _column(batch: Any, name: str) -> list:
    """One column of a batch as Python values: a dict of numpy arrays, a pandas DataFrame or a pyarrow Table."""
    import pyarrow as pa

    if not isinstance(batch, (dict, pa.Table)) and not (hasattr(batch, "columns") and hasattr(batch, "index")):
        raise TypeError(
            f"A batch is a dict of numpy arrays, a pandas DataFrame or a pyarrow Table, got {type(batch).__name__}."
        )
    columns = batch.column_names if isinstance(batch, pa.Table) else list(batch.keys())
    if name not in columns:
        raise ValueError(
            f"The batch has no `{name}` column (its columns: {columns}); pass text_column=... to MultiGroupPredictor."
        )
    if isinstance(batch, pa.Table):
        return batch.column(name).to_pylist()
    return list(batch[name])  # numpy strings or pandas objects; a missing text stays None (or NaN in pandas)


def _with_columns(batch: Any, predicted) -> Any:
    """The batch, in its own kind, with the predicted table's columns added after its own."""
    import numpy as np
    import pyarrow as pa

    columns = batch.column_names if isinstance(batch, pa.Table) else list(batch.keys())
    clash = [name for name in predicted.column_names if name in columns]
    if clash:
        raise ValueError(
            f"The batch already has the columns {clash}, which the predictions would overwrite: rename them."
        )
    if isinstance(batch, pa.Table):
        for name in predicted.column_names:
            batch = batch.append_column(name, predicted.column(name))
        return batch
    if isinstance(batch, dict):
        out = dict(batch)
        for name in predicted.column_names:
            column = predicted.column(name)
            if pa.types.is_floating(column.type) and not column.null_count:
                out[name] = column.to_numpy()
            else:  # labels, lists, nulls: one Python object per row, as Ray Data hands such columns over
                out[name] = np.empty(len(column), dtype=object)
                out[name][:] = column.to_pylist()
        return out
    frame = predicted.to_pandas()
    frame.index = batch.index
    return batch.join(frame)
