"""Pipeline inputs: a generator and a KeyDataset against a list, the memory of a long stream (issue 13's targets), and
whether tokenizing ahead in a background thread keeps the encoder busier (the "Scale" issue, part 4).

    python scripts/bench_pipeline_inputs.py --data-dir ../shared/data/semeval16_absa_rest_en
    python scripts/bench_pipeline_inputs.py --data-dir ../shared/data/semeval16_absa_rest_en --sections overlap

Throughput: the same 5,000 texts (the data folder's train, validation and test texts, repeated) through the
pipeline at batch size 32, MiniLM with a multi-group head, 2 torch threads; list, generator and `KeyDataset`
interleaved, 3 repeats, median texts/s. Target: generator and KeyDataset >= 0.9x the list.
Memory: peak RSS of a fresh process that streams N generated texts through the pipeline and drops each result,
for N = 2,000 and 200,000. Target: the difference <= 100 MB.
Overlap: the same texts through the pipeline at batch size 32 with `read_ahead=0` (each batch tokenized in turn),
`read_ahead=2` (a background thread tokenizes two batches ahead while the model runs) and transformers' own loop
(`Pipeline.__call__` over the batches, as multigroup 0.3.0 ran them), torch's threads as they are; for MiniLM (the
encoder dominates) and a 2-layer, 64-wide encoder with random weights on MiniLM's tokenizer (tokenizing is a quarter
of a batch's time). Arms interleaved; a run counts only when other processes used < 5% of the machine's CPU
meanwhile (/proc/stat); median texts/s and the median of each repeat's ratio to `read_ahead=0`.
Writes scripts/results/bench_pipeline_inputs.{json,md}; `--sections` reruns some and keeps the others' results.
"""

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

from _harness import (
    RESULTS,
    REVIEW_GROUPS,
    THREADS,
    build,
    earlier_results,
    interleaved,
    medians,
    quiet_logging,
    quiet_timed,
    repeat_to,
    tokenizer,
    write_results,
)

# A fresh process (run with scripts/ first on sys.path) streams argv[1] generated texts and prints its peak RSS.
STREAM = """
import resource, sys, torch
from transformers import pipeline
from _harness import REVIEW_GROUPS, THREADS, build, quiet_logging, tokenizer
torch.set_num_threads(THREADS)
quiet_logging()
clf = pipeline("multi-group-classification", model=build("multigroup", REVIEW_GROUPS), tokenizer=tokenizer())
words = "the food service price staff was great slow friendly cold tasty expensive cheap view".split()
texts = (" ".join(words[(i * 7 + j) % len(words)] for j in range(4 + i % 9)) for i in range(int(sys.argv[1])))
count = sum(1 for _ in clf(texts, batch_size=32))
print(count, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def throughput(texts: list[str], repeats: int) -> dict:
    import torch
    from transformers import pipeline
    from transformers.pipelines.pt_utils import KeyDataset

    torch.set_num_threads(THREADS)
    clf = pipeline("multi-group-classification", model=build("multigroup", REVIEW_GROUPS), tokenizer=tokenizer())
    rows = [{"text": text} for text in texts]
    kinds = {
        "list": lambda: clf(texts, batch_size=32),
        "generator": lambda: list(clf((text for text in texts), batch_size=32)),
        "KeyDataset": lambda: list(clf(KeyDataset(rows, "text"), batch_size=32)),
    }

    def every_text(run):  # `run`, checked to answer every text
        def checked():
            assert len(run()) == len(texts)

        return checked

    clf(texts[:64], batch_size=32)  # warm-up
    seconds = medians(interleaved({kind: every_text(run) for kind, run in kinds.items()}, repeats, warmup=0))
    speed = {kind: len(texts) / value for kind, value in seconds.items()}
    return {kind: {"texts_per_s": value, "vs_list": value / speed["list"]} for kind, value in speed.items()}


def memory(counts: list[int]) -> dict:
    found = {}
    for count in counts:
        code = f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})" + STREAM
        completed = subprocess.run(
            [sys.executable, "-c", code, str(count)], capture_output=True, text=True, check=True
        )
        streamed, peak_mb = map(int, completed.stdout.split()[-2:])
        assert streamed == count
        found[count] = peak_mb
    return found


QUIET = 0.05  # a run counts when other processes used less than this share of the machine's CPU


def transformers_loop(clf, texts: list[str], batch_size: int) -> list[dict]:
    """multigroup 0.3.0's loop: each window's length-sorted batches through `Pipeline.__call__`, one item each."""
    from itertools import islice

    from transformers import Pipeline

    from multigroup.pipeline_multigroup import WINDOW_BATCHES

    stream, results = iter(texts), []
    while window := list(islice(stream, batch_size * WINDOW_BATCHES)):
        order = sorted(range(len(window)), key=lambda i: len(window[i]))
        batches = [[window[i] for i in order[s : s + batch_size]] for s in range(0, len(window), batch_size)]
        rows = [row for batch in Pipeline.__call__(clf, batches, batch_size=1) for row in batch]
        ordered = [None] * len(window)
        for position, i in enumerate(order):
            ordered[i] = rows[position]
        results += ordered
    return results


def overlap(pool: list[str], repeats: int) -> dict:
    import torch
    from transformers import pipeline

    encoders, tok, found = {"MiniLM": ("minilm", 1024), "64-wide, 2 layers": ("tiny", 4096)}, tokenizer(), {}
    for name, (encoder, count) in encoders.items():
        clf = pipeline("multi-group-classification", model=build("multigroup", REVIEW_GROUPS, encoder), tokenizer=tok)
        texts = repeat_to(pool, count)

        def ahead(n: int):
            def run():
                clf.read_ahead = n
                return clf(texts, batch_size=32)

            return run

        arms = {"read_ahead=0": ahead(0), "read_ahead=2": ahead(2),
                "transformers loop (0.3.0)": lambda: transformers_loop(clf, texts, 32)}  # fmt: skip
        answers = [run() for run in arms.values()]  # also the warm-up
        same = all(answer == answers[0] for answer in answers)
        runs = interleaved(arms, repeats, warmup=0, rotate=True, measure=quiet_timed)
        quiet = [i for i in range(repeats) if all(runs[arm][i][1] < QUIET for arm in arms)]
        kept = quiet or list(range(repeats))
        base = "read_ahead=0"
        found[name] = {
            "texts": count, "repeats": repeats, "quiet_repeats": len(quiet), "identical_results": same,
            "threads": torch.get_num_threads(),
            "arms": {arm: {
                "texts_per_s": count / statistics.median(runs[arm][i][0] for i in kept),
                "vs_read_ahead_0": statistics.median(runs[base][i][0] / runs[arm][i][0] for i in kept),
                "all_runs_texts_per_s": [round(count / wall) for wall, _ in runs[arm]],
            } for arm in arms},
        }  # fmt: skip
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="a folder with train/validation/test.jsonl")
    parser.add_argument("--texts", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stream", nargs=2, type=int, default=[2000, 200000], help="the two stream lengths")
    parser.add_argument("--overlap-repeats", type=int, default=12)
    parser.add_argument("--sections", nargs="+", choices=["throughput", "memory", "overlap"],
                        default=["throughput", "memory", "overlap"])  # fmt: skip
    args = parser.parse_args()

    from multigroup.data import load_table

    quiet_logging()
    pool = [
        row["text"]
        for split in ("train", "validation", "test")
        for row in load_table(Path(args.data_dir) / f"{split}.jsonl")
    ]
    output = RESULTS / "bench_pipeline_inputs"
    results = earlier_results(output)
    if "throughput" in args.sections:
        results.update(texts=args.texts, batch_size=32, threads=THREADS,
                       throughput=throughput(repeat_to(pool, args.texts), args.repeats))  # fmt: skip
    if "memory" in args.sections:
        peaks = memory(args.stream)
        small, large = args.stream
        results.update(peak_rss_mb=peaks, growth_mb=peaks[large] - peaks[small])
    if "overlap" in args.sections:
        results["overlap"] = overlap(pool, args.overlap_repeats)
    lines = []
    if "throughput" in results:
        lines += ["| input | texts/s | vs list |", "|---|---|---|"]
        lines += [
            f"| {kind} | {v['texts_per_s']:.0f} | {v['vs_list']:.2f} |" for kind, v in results["throughput"].items()
        ]
    if "peak_rss_mb" in results:
        (small, low), (large, high) = sorted((int(n), mb) for n, mb in results["peak_rss_mb"].items())
        lines += ["", f"Peak RSS streaming {small:,} texts: {low} MB; {large:,} texts: {high} MB "
                  f"(growth {results['growth_mb']} MB)."]  # fmt: skip
    if "overlap" in results:
        lines += ["", "Tokenizing ahead in a background thread (batch 32; texts/s, median over the quiet repeats; vs "
                  "read_ahead=0: median paired ratio):", "",
                  "| encoder | arm | texts/s | vs read_ahead=0 | quiet repeats | same results |", "|---|---|---|---|---|---|"]  # fmt: skip
        for name, found in results["overlap"].items():
            for arm, v in found["arms"].items():
                lines.append(
                    f"| {name} ({found['threads']} threads) | {arm} | {v['texts_per_s']:.0f} | {v['vs_read_ahead_0']:.3f} | {found['quiet_repeats']}/{found['repeats']} | {found['identical_results']} |"
                )
    write_results(output, results, "\n".join(lines), indent=1)


if __name__ == "__main__":
    main()
