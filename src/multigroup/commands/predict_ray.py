"""`multigroup predict --engine ray`: the file read by Ray Data, predicted by `--workers` actors (one model each),
written by this process in input order, as the local `predict` writes it."""

import json
import logging
import os
import sys
from pathlib import Path, PurePosixPath

from ..distributed import ERROR_COLUMN, MultiGroupPredictor, text_errors

READERS = {".jsonl": "read_json", ".json": "read_json", ".csv": "read_csv", ".parquet": "read_parquet"}
ROW_COLUMNS = ("id", "blank", ERROR_COLUMN, "record")  # what a worker returns beside the predictions


class Rows(MultiGroupPredictor):
    """Per row: `id` (its id, null where it has none), `blank` (an empty text), `error` and `record` (the row as
    JSON, for the side file) for a row without a string text, then its predictions: `prediction`, the JSON the
    local `predict` writes (`as_json`), or the columns of `prediction_table`. Every row is answered; the writer
    decides what a bad row does (`--on-error`). Serialising on the workers leaves this process only the writing."""

    def __init__(self, model: str, id_column: str, as_json: bool, **options):
        super().__init__(model, **options, on_error="skip")
        self.id_column, self.as_json = id_column, as_json

    def __call__(self, batch):
        import pyarrow as pa

        texts, n = batch.column(self.text_column).to_pylist(), batch.num_rows
        bad = [not isinstance(text, str) for text in texts]
        rows = batch.to_pylist() if any(bad) else [None] * n
        columns = {
            "id": batch.column(self.id_column) if self.id_column in batch.column_names else pa.nulls(n),
            "blank": [not b and not text.strip() for text, b in zip(texts, bad)],
            ERROR_COLUMN: text_errors(texts, self.text_column),
            "record": [json.dumps(row, ensure_ascii=False, default=str) if b else None for row, b in zip(rows, bad)],
        }
        good = [text for text, b in zip(texts, bad) if not b]
        if not self.as_json:
            predicted = super().__call__(batch.select([self.text_column]))
            for name in predicted.column_names[1:-1]:  # after the text, before `error`
                columns[name] = predicted.column(name)
            return pa.table(columns)
        decoded = iter(self.config.decode(self._logits(good), **self.options) if good else [])
        columns["prediction"] = [None if b else json.dumps(next(decoded), ensure_ascii=False) for b in bad]
        return pa.table(columns)


def suffix_of(path: str) -> str:
    """A local path's or a URL's file suffix (a URL's query string, `?versionId=...`, left out)."""
    from urllib.parse import urlparse

    return PurePosixPath(urlparse(path).path if "://" in path else path).suffix


def dataset(path: str, address: str | None, cpus: int = 1):
    """The file (a local path or a URL Ray Data reads: `s3://...`, `gs://...`, `file://...`) as a Ray dataset, rows
    in file order; on the cluster at `address` (or `RAY_ADDRESS`), else on a local one started here, with at least
    `cpus` (the actors' CPUs) plus one for Ray Data's own tasks."""
    import ray

    suffix = suffix_of(path)
    reader = READERS.get(suffix.lower())
    if reader is None:
        raise ValueError(f"{path}: predict --engine ray reads .jsonl, .csv or .parquet files, got {suffix!r}.")
    if not ray.is_initialized():
        local = address is None and "RAY_ADDRESS" not in os.environ
        ray.init(
            address=address, num_cpus=max(os.cpu_count() or 1, cpus + 1) if local else None, include_dashboard=False,
            log_to_driver=False, logging_level=logging.WARNING,
        )  # fmt: skip
    total = int(ray.cluster_resources().get("CPU", 0))
    if total < cpus + 1:
        raise ValueError(
            f"The Ray cluster has {total} CPUs and the actors ask for {cpus} (--workers x --threads): Ray Data needs "
            "one more to list and read the file, or the run waits for ever. Pass fewer --workers or --threads."
        )
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # the output in input order, as the local predict's
    context.enable_progress_bars = False
    # Reading takes no CPU of its own: with as many actors as CPUs (--workers 2 on 2 cores) a read task waiting
    # for one would wait for ever. (Listing a parquet file's fragments still asks for one: hence the `+ 1` above.)
    return getattr(ray.data, reader)(path, num_cpus=0)


def predict(args, path: str, partial: Path, side, options: dict, lines):
    """Predict every row on Ray and write the local `predict`'s output (JSONL, or parquet by the output's name) to
    `partial`, bad rows to `side`; returns the count written. `lines`: the `Lines` of skipped and empty rows."""
    from contextlib import nullcontext

    import ray
    from tqdm.auto import tqdm

    from .predict import write_window

    parquet = Path(args.output).suffix.lower() == ".parquet"
    data = dataset(path, args.address, args.workers * args.threads)
    if args.text_column not in data.columns():
        raise ValueError(
            f"{path}: no `{args.text_column}` column (the columns are {sorted(data.columns())}); name the text's "
            "column with --text-column."
        )
    kwargs = {"model": args.onnx or args.model, "batch_size": args.batch_size, "text_column": args.text_column,
              "int8": args.int8, "threads": args.threads, "id_column": args.id_column, "as_json": not parquet,
              **options}  # fmt: skip
    mapped = data.map_batches(
        Rows, fn_constructor_kwargs=kwargs, batch_format="pyarrow", batch_size=args.chunk_size or args.batch_size * 64,
        compute=ray.data.ActorPoolStrategy(size=args.workers), num_cpus=args.threads,
    )  # fmt: skip
    csv = suffix_of(path).lower() == ".csv"
    count, line, writer = 0, 2 if csv else 1, None  # a CSV's header is its line 1
    skipped, empty = lines
    lines_out = nullcontext() if parquet else open(partial, "w", encoding="utf-8")
    with tqdm(desc="texts", unit=" texts", file=sys.stderr) as bar, lines_out as out:
        batches = iter(mapped.iter_batches(batch_format="pyarrow", batch_size=None))
        try:
            for batch in batches:
                numbers = range(line, line + batch.num_rows)
                line += batch.num_rows
                ids, keep = batch.column("id").to_pylist(), []
                errors, records = batch.column(ERROR_COLUMN).to_pylist(), batch.column("record").to_pylist()
                for i, (number, error, blank) in enumerate(zip(numbers, errors, batch.column("blank").to_pylist())):
                    if error is None:
                        keep.append(i)
                        if blank:
                            empty.add(number)
                    elif args.on_error == "fail":
                        raise ValueError(
                            f"{path}, line {number}: {error}. Fix or drop that line, or pass --on-error skip to "
                            "leave such rows out (listed in a side file)."
                        )
                    else:
                        side.write(f'{{"line": {number}, "reason": {json.dumps(error)}, "record": {records[i]}}}\n')
                        skipped.add(number)
                ids = [numbers[i] if ids[i] is None else ids[i] for i in keep]
                if parquet:
                    table = batch.drop_columns(list(ROW_COLUMNS)).take(keep)
                    writer = write_window(writer, partial, table, ids, args.id_column, count)
                else:
                    predictions = batch.column("prediction").to_pylist()
                    for id_, i in zip(ids, keep):
                        head, prediction = '{"id": ' + json.dumps(id_, ensure_ascii=False), predictions[i]
                        out.write(head + (", " + prediction[1:] if prediction != "{}" else "}") + "\n")
                count += len(keep)
                bar.update(batch.num_rows)
        finally:
            if hasattr(batches, "close"):  # a run stopped early releases its actors (and their CPUs) now
                batches.close()
            if writer is not None:
                writer.close()
    return count
