"""Predict every group for each text of a JSONL or CSV file, streamed in chunks; one JSON line (or parquet row) per
input."""

import json
import os
import sys
from collections import deque
from collections.abc import Iterator
from pathlib import Path


def register(parser) -> None:
    from .common import add_model_arguments

    add_model_arguments(parser)
    parser.add_argument(
        "--file", required=True,
        help="JSONL, CSV or parquet with a text column; with --engine ray also a URL Ray Data reads (s3://, gs://...)",
    )  # fmt: skip
    parser.add_argument(
        "--output", required=True,
        help='JSONL written, one line per text, in input order (rows set aside by --on-error skip are left out and '
        'listed in OUTPUT_STEM.skipped.jsonl): {"id": ..., "<group>": ..., ...} with each '
        'group\'s prediction under its name: multiclass {"label", "score"}, multilabel the list of {"label", '
        '"score"} at or above their threshold, best first, regression {"value"}. A name ending in .parquet writes '
        'columns instead, one row per text, built without a Python object per label (the bulk output for many '
        'groups): id, then per multiclass group <group> (label) and <group>_score, per multilabel group <group> '
        '(list of labels, best first) and <group>_scores, per regression group <group> (value)',
    )  # fmt: skip
    parser.add_argument("--text-column", default="text", help="the column holding the texts")
    parser.add_argument("--id-column", default="id", help="copied to the output; the line number when absent")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per forward pass")
    parser.add_argument(
        "--chunk-size", type=int, default=None,
        help="texts read ahead and sorted by length together, so that a batch pads little (rounded up to whole "
        "batches); default: 64 batches. The file is streamed: memory holds one such window, whatever its size",
    )  # fmt: skip
    parser.add_argument(
        "--top-k", type=int, default=1,
        help="1: what --output describes; k above 1: the k best labels with their scores for every classification "
        "group, multilabel included; 0: every label with its score",
    )  # fmt: skip
    parser.add_argument(
        "--threshold", type=float, default=None,
        help="one threshold for every multilabel label; default: each label's own, stored in the model's config",
    )  # fmt: skip
    parser.add_argument(
        "--on-error", choices=["fail", "skip"], default="fail",
        help="a row whose text is missing or not a string: fail (default) stops and names its line; skip leaves it "
        "out of OUTPUT and writes it, with its line and the reason, to OUTPUT_STEM.skipped.jsonl. An empty text is "
        "no error: it is predicted (from no words: the model's prior) and a warning names its lines",
    )  # fmt: skip
    parser.add_argument(
        "--engine", choices=["local", "ray"], default="local",
        help="local (default): this process; ray: the file read by Ray Data and predicted by --workers actors, one "
        "model each, on the cluster at --address (or RAY_ADDRESS), else on a local one; the same output (pip install "
        "'multigroup[ray]'). With ray, --file may be .parquet too, and a row without an id gets its row's line as "
        "the file numbers it when no record spans lines or blank lines",
    )  # fmt: skip
    parser.add_argument("--workers", type=int, default=2, help="with --engine ray: the actors, one model each")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="with --engine ray: torch (or ONNX Runtime) threads and CPUs of each actor (default 1)",
    )  # fmt: skip
    parser.add_argument(
        "--address", default=None,
        help="with --engine ray: the Ray cluster to run on (default: RAY_ADDRESS, else a local cluster started here)",
    )  # fmt: skip


def read_records(path: Path) -> Iterator[tuple[int, dict]]:
    """`(line number, record)` pairs from a JSONL or CSV file, one at a time; the line a record starts on."""
    from ..data import iter_records

    if path.suffix.lower() not in (".jsonl", ".json", ".csv"):
        raise ValueError(f"{path}: predict reads .jsonl or .csv files, got {path.suffix!r}.")
    yield from iter_records(path)


class Lines:
    """The lines of some kind of row: how many, and the first `shown` of them (memory stays flat on any file)."""

    def __init__(self, shown: int = 10):
        self.count, self.first, self.shown = 0, [], shown

    def add(self, line: int) -> None:
        self.count += 1
        if len(self.first) < self.shown:
            self.first.append(line)

    def __len__(self) -> int:
        return self.count


def _lines(lines: Lines) -> str:
    """`line 5`, `lines 5, 9`, or the first few and how many more."""
    more = f" and {lines.count - len(lines.first)} more" if lines.count > len(lines.first) else ""
    return f"line{'s' if lines.count > 1 else ''} {', '.join(map(str, lines.first))}{more}"


def _rows(count: int) -> str:
    return f"{count} row{'s' if count != 1 else ''}"


def run(args, extra: list[str]) -> int:
    path = Path(args.file)
    remote = args.engine == "ray" and "://" in args.file  # s3://, gs://, file://...: Ray Data reads it
    if not remote and not path.is_file():
        raise FileNotFoundError(f"No such file: {path}")
    if args.chunk_size is not None and args.chunk_size < 1:
        raise ValueError(f"--chunk-size must be a positive number of texts, got {args.chunk_size}.")
    output = Path(args.output)
    if output.suffix.lower() not in (".jsonl", ".json", ".parquet"):
        raise ValueError(f"--output {output}: predict writes .jsonl or .parquet files, got {output.suffix!r}.")
    options = {"top_k": args.top_k or None}
    if args.threshold is not None:
        options["threshold"] = args.threshold
    if args.engine == "ray":
        if args.workers < 1 or args.threads < 1:
            raise ValueError(f"--workers and --threads must be positive, got {args.workers} and {args.threads}.")
        from ..distributed import model_config
        from .common import check_onnx, reading_model

        check_onnx(args)  # here, not in the actors, where an error would only show in Ray's logs
        with reading_model(args.onnx or args.model):
            model_config(args.onnx or args.model).check_options(**options)
        emit = None
    else:
        runner = _Runner(args)
        if args.chunk_size is not None and args.batch_size > 0:  # a bad batch size is named by the classifier
            runner.windowed.window_batches = -(-args.chunk_size // args.batch_size)
        runner.config.check_options(**options)
        parquet = output.suffix.lower() == ".parquet"
        emit = (
            _parquet(runner, options, partial_of(output), args.id_column)
            if parquet
            else _jsonl(runner, options, partial_of(output))
        )
    count = 0
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_of(output)  # renamed at the end: a failed run leaves OUTPUT as it was
    skipped_path = output.with_name(f"{output.stem}.skipped.jsonl")
    skipped_partial = output.with_name(f".{skipped_path.name}.partial")
    try:
        if emit is None:
            count, skipped, empty = _write_on_ray(args, options, partial, skipped_partial)
        else:
            count, skipped, empty = _write(emit, read_records(path), path, args, skipped_partial)
        os.replace(partial, output)
        if skipped:
            os.replace(skipped_partial, skipped_path)
        else:  # an earlier run's list does not describe this OUTPUT
            skipped_path.unlink(missing_ok=True)
    finally:
        partial.unlink(missing_ok=True)
        skipped_partial.unlink(missing_ok=True)
    print(f"Wrote {count} predictions to {output}", file=sys.stderr)
    if skipped:
        print(f"Skipped {_rows(len(skipped))} ({_lines(skipped)}): see {skipped_path}", file=sys.stderr)
    if empty:
        print(
            f"Warning: {_rows(len(empty))} with an empty `{args.text_column}` ({_lines(empty)}) got predictions "
            "from no words (the model's prior); drop them from the input if you want no prediction there.",
            file=sys.stderr,
        )
    return 0


def partial_of(output: Path) -> Path:
    return output.with_name(f".{output.name}.partial")


def _write_on_ray(args, options: dict, partial: Path, skipped_partial: Path):
    """`_write` on Ray Data (`predict_ray`): the same outputs and errors."""
    try:
        from .predict_ray import predict
    except ImportError as error:
        raise ValueError(f"--engine ray needs Ray Data ({error}): pip install 'multigroup[ray]'.") from None
    skipped, empty = Lines(), Lines()
    with open(skipped_partial, "w", encoding="utf-8") as side:
        count = predict(args, args.file, partial, side, options, (skipped, empty))
    _check_written(args.file, args, count, skipped, None)
    return count, skipped, empty


def _check_written(path: Path, args, count: int, skipped: Lines, first_skipped: dict | None) -> None:
    """A run that wrote nothing is an error: the text column is likely named wrong, or the file is empty."""
    if count == 0 and skipped:
        columns = f" (the first has columns {sorted(first_skipped)})" if first_skipped is not None else ""
        raise ValueError(
            f"{path}: none of its {_rows(len(skipped))} has a string `{args.text_column}`{columns}; name the text "
            "column with --text-column."
        )
    if count == 0:
        raise ValueError(f"{path} is empty: it holds no records.")


class _Runner:
    """The model `--model` (the pipeline) or `--onnx` (the ONNX runner) names: `classify(texts, **options)` streams
    predictions in input order, `logits(texts)` gives a list's logits, `windowed.window_batches` sets the read-ahead
    window; the same predictions either way."""

    def __init__(self, args):
        from ..hub_code.pipeline_multigroup import MultiGroupClassificationPipeline
        from ..inference import batched_logits
        from .common import check_onnx, load_model, load_onnx

        check_onnx(args)
        self.batch_size = args.batch_size
        if args.onnx:
            self.windowed = runner = load_onnx(args)
            self.config = runner.config
            self.classify = lambda texts, **options: runner(texts, batch_size=self.batch_size, **options)
            self.logits = lambda texts: runner.logits(texts, self.batch_size)
            return
        model, tokenizer = load_model(args.model)
        self.windowed = self.classify = MultiGroupClassificationPipeline(
            model=model, tokenizer=tokenizer, batch_size=args.batch_size
        )
        self.config = model.config
        self.logits = lambda texts: batched_logits(model, tokenizer, texts, self.batch_size)

    @property
    def window(self) -> int:
        return self.batch_size * self.windowed.window_batches


def _jsonl(runner: _Runner, options: dict, partial: Path):
    """Writes one JSON line per prediction as the model streams them; returns how many."""

    def emit(texts: Iterator[str], ids: deque, progress) -> int:
        count = 0
        with open(partial, "w", encoding="utf-8") as out:
            for prediction in runner.classify(texts, **options):
                out.write(json.dumps({"id": ids.popleft(), **prediction}, ensure_ascii=False) + "\n")
                count += 1
                progress(count)
        return count

    return emit


def _parquet(runner: _Runner, options: dict, partial: Path, id_column: str):
    """Writes one parquet row group per window of texts, from the window's logits (`prediction_table`)."""

    def emit(texts: Iterator[str], ids: deque, progress) -> int:
        from ..hub_code.batching_multigroup import windows
        from ..inference import prediction_table

        count, writer = 0, None
        try:
            for window in windows(texts, runner.window):
                table = prediction_table(runner.config, runner.logits(window), **options)
                writer = write_window(writer, partial, table, [ids.popleft() for _ in window], id_column, count)
                count += len(window)
                progress(count)
        finally:
            if writer is not None:
                writer.close()
        return count

    return emit


def write_window(writer, partial: Path, table, ids: list, id_column: str, written: int):
    """Write one window's predictions (`table`) with their ids as a parquet row group, the first opening `partial`;
    returns the writer. Ids of another type than the first window's are an error naming the rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = table.add_column(0, "id", pa.array(ids))
        writer = writer or pq.ParquetWriter(partial, table.schema)
        writer.write_table(table)
    except (pa.ArrowException, TypeError) as error:
        raise ValueError(
            f"--id-column {id_column}: a parquet column holds one type, and the ids of rows {written + 1}-"
            f"{written + len(ids)} do not fit ({error}); write .jsonl, or give ids of one type."
        ) from None
    return writer


def _write(emit, records, path: Path, args, skipped_partial: Path):
    """Predict and write every row with a text; returns the count and the lines skipped and with an empty text.

    The file goes through the model as one stream, a window of texts at a time (on an accelerator read and
    tokenized in a background thread while the model runs); `emit` writes each prediction or window as it comes
    back, in input order, so memory holds one window whatever the file's size."""
    from tqdm.auto import tqdm

    count, skipped, empty, first_skipped = 0, Lines(), Lines(), []
    ids = deque()  # the id of each text handed to the pipeline and not yet written: at most a window's

    def texts(side) -> Iterator[str]:
        for line, record in records:
            text = record.get(args.text_column)
            if isinstance(text, str):
                ids.append(record.get(args.id_column, line))
                if not text.strip():
                    empty.add(line)
                yield text
                continue
            reason = (
                f"`{args.text_column}` must be a string, got {text!r}"
                if args.text_column in record
                else f"no `{args.text_column}` key (the keys are {sorted(record)}); name the text's key with "
                "--text-column"
            )
            if args.on_error == "fail":
                raise ValueError(
                    f"{path}, line {line}: {reason}. Fix or drop that line, or pass --on-error skip to leave "
                    "such rows out (listed in a side file)."
                )
            side.write(json.dumps({"line": line, "reason": reason, "record": record}, ensure_ascii=False) + "\n")
            skipped.add(line)
            if not first_skipped:
                first_skipped.append(record)

    with (
        open(skipped_partial, "w", encoding="utf-8") as side,
        tqdm(desc="texts", unit=" texts", file=sys.stderr) as bar,
    ):

        def progress(written: int) -> None:
            bar.update(written + len(skipped) - bar.n)  # rows read: predicted and set aside

        count = emit(texts(side), ids, progress)
        progress(count)
    _check_written(path, args, count, skipped, first_skipped[0] if first_skipped else None)
    return count, skipped, empty
