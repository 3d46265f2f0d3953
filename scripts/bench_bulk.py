"""Bulk output: what `multigroup predict` spends deciding and writing 1,000 rows, against the encoder's forward.

    python scripts/bench_bulk.py --data-dir ../shared/data/semeval16_absa_rest_en

Groups of 5 labels as in bench_scale.py (even groups multiclass, odd multilabel), 1,000 rows of seeded random logits:
  jsonl: `config.decode` and one JSON line per row (what `predict --output x.jsonl` writes);
  parquet: `prediction_table` and `pyarrow.parquet.write_table` (what `predict --output x.parquet` writes);
  against MiniLM's forward over 1,000 real texts (batches of 32 sorted by length, as `predict` runs them,
  inference mode), interleaved, medians.
Writes scripts/results/bench_bulk.{json,md} (or --output).
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from _harness import (
    MAX_LENGTH,
    RESULTS,
    THREADS,
    interleaved,
    load_texts,
    machine,
    medians,
    minilm_path,
    quiet_logging,
    repeat_to,
    tokenizer,
    write_results,
)
from bench_scale import BATCH, make_groups

ROWS = 1000
GROUPS = (20, 100, 400)
REPEATS = 5


def writers(config, logits, folder: Path) -> dict:
    import pyarrow.parquet as pq

    from multigroup.inference import prediction_table

    def jsonl():
        with open(folder / "out.jsonl", "w", encoding="utf-8") as out:
            for i, row in enumerate(config.decode(logits)):
                out.write(json.dumps({"id": i, **row}, ensure_ascii=False) + "\n")

    def parquet():
        table = prediction_table(config, logits)
        pq.write_table(table.add_column(0, "id", [list(range(len(logits)))]), folder / "out.parquet")

    return {"jsonl": jsonl, "parquet": parquet}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="real sentences from a folder with test.jsonl/train.jsonl")
    parser.add_argument("--groups", nargs="+", type=int, default=list(GROUPS))
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--output", default=str(RESULTS / "bench_bulk"))
    args = parser.parse_args()

    import torch
    from transformers import AutoModel

    from multigroup import MultiGroupConfig

    quiet_logging()
    torch.set_num_threads(THREADS)
    start = time.perf_counter()
    tok, texts = tokenizer(), sorted(repeat_to(load_texts(args.data_dir), ROWS), key=len)  # as predict batches
    batches = [
        tok(texts[s : s + BATCH], padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
        for s in range(0, ROWS, BATCH)
    ]
    encoder = AutoModel.from_pretrained(minilm_path()).eval()

    def forward():
        with torch.inference_mode():
            for batch in batches:
                encoder(**batch)

    arms = {"forward": forward}
    with tempfile.TemporaryDirectory() as folder:
        for count in args.groups:
            config = MultiGroupConfig(groups=make_groups(count))
            logits = torch.randn(ROWS, config.num_columns, generator=torch.Generator().manual_seed(count))
            for name, run in writers(config, logits, Path(folder)).items():
                arms[f"{count}/{name}"] = run
        times = medians(interleaved(arms, args.repeats, warmup=1))
    results = {"machine": machine(("torch", "transformers", "pyarrow")), "rows": ROWS, "repeats": args.repeats,
               "texts": f"real ({args.data_dir})" if args.data_dir else "built-in sample",
               "forward_s": times["forward"], "groups": {}}  # fmt: skip
    for count in args.groups:
        cells = {name: times[f"{count}/{name}"] for name in ("jsonl", "parquet")}
        results["groups"][str(count)] = {
            **{f"{name}_s": seconds for name, seconds in cells.items()},
            **{f"{name}_share": seconds / times["forward"] for name, seconds in cells.items()},
        }
    write_results(args.output, results, markdown(results))
    print(f"bench_bulk: done in {time.perf_counter() - start:.0f} s")


def markdown(results: dict) -> str:
    lines = [
        f"{results['rows']} rows, medians of {results['repeats']} interleaved repeats; MiniLM's forward over as many "
        f"texts: {results['forward_s']:.2f} s. {results['machine']}",
        "",
        "| groups | JSONL: decode + write (s) | share of forward | parquet: table + write (s) | share of forward |",
        "|---|---|---|---|---|",
    ]
    for count, cells in results["groups"].items():
        lines.append(
            f"| {count} | {cells['jsonl_s']:.3f} | {100 * cells['jsonl_share']:.1f}% | {cells['parquet_s']:.3f} | {100 * cells['parquet_share']:.1f}% |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
