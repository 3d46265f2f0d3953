"""Predict every group for each text of a JSONL or CSV file, streamed in chunks; one JSON line per input."""

import csv
import json
import os
import sys
from collections.abc import Iterator
from itertools import islice
from pathlib import Path


def register(parser) -> None:
    parser.add_argument("--model", required=True, help="a saved multigroup model folder")
    parser.add_argument("--file", required=True, help="JSONL or CSV with a text column")
    parser.add_argument("--output", required=True, help="JSONL written: {id, predictions} per input line")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--id-column", default="id", help="copied to the output; the line number when absent")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--chunk-size", type=int, default=4096, help="records read and predicted at a time")
    parser.add_argument("--top-k", type=int, default=1, help="0 for every label with its score")
    parser.add_argument("--threshold", type=float, default=None, help="override the multilabel thresholds")


def read_records(path: Path) -> Iterator[tuple[int, dict]]:
    """`(line number, record)` pairs from a JSONL or CSV file, one at a time."""
    from ..data import iter_jsonl

    if path.suffix.lower() in (".jsonl", ".json"):
        yield from iter_jsonl(path)
    elif path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as handle:
            yield from enumerate(csv.DictReader(handle), start=2)
    else:
        raise ValueError(f"{path}: predict reads .jsonl or .csv files, got {path.suffix!r}.")


def run(args, extra: list[str]) -> int:
    from ..pipeline_multigroup import MultiGroupClassificationPipeline
    from .common import load_model

    path = Path(args.file)
    if not path.is_file():
        raise FileNotFoundError(f"No such file: {path}")
    model, tokenizer = load_model(args.model)
    classify = MultiGroupClassificationPipeline(model=model, tokenizer=tokenizer, batch_size=args.batch_size)
    options = {"top_k": args.top_k or None}
    if args.threshold is not None:
        options["threshold"] = args.threshold
    records, count = read_records(path), 0
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial")  # renamed at the end: a failed run leaves OUTPUT as it was
    try:
        count = _write(classify, records, path, args, options, partial)
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    print(f"Wrote {count} predictions to {output}", file=sys.stderr)
    return 0


def _write(classify, records, path: Path, args, options: dict, partial: Path) -> int:
    from tqdm.auto import tqdm

    count = 0
    with open(partial, "w", encoding="utf-8") as out, tqdm(desc="texts", unit=" texts", file=sys.stderr) as bar:
        while chunk := list(islice(records, args.chunk_size)):
            texts = []
            for line, record in chunk:
                text = record.get(args.text_column)
                if not isinstance(text, str):
                    raise ValueError(
                        f"{path}, line {line}: `{args.text_column}` must be a string, got {text!r}"
                        + (f"; columns are {sorted(record)}" if args.text_column not in record else "")
                    )
                texts.append(text)
            for (line, record), prediction in zip(chunk, classify(texts, **options)):
                row = {"id": record.get(args.id_column, line), **prediction}
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += len(chunk)
            bar.update(len(chunk))
    if count == 0:
        raise ValueError(f"{path} is empty: it holds no records.")
    return count
