"""ONNX Runtime against eager PyTorch: batch-1 latency, logits difference, and per-group F1 (fp32 and int8).

    multigroup train ... --output-dir out/semeval          # a trained model
    python scripts/bench_onnx.py --model out/semeval --data-dir ../shared/data/semeval16_absa_rest_en

Exports the model (fp32 and dynamic int8), then on the test split: the largest |logit difference| against eager,
per-group micro / macro F1 with each backend (same thresholds, same decode), and single-text latency medians over
interleaved repeats. Writes scripts/results/bench_onnx.{json,md}.
"""

import argparse
import statistics
import tempfile
from pathlib import Path

from _harness import RESULTS, THREADS, interleaved, p95, quiet_logging, write_results

# -- knobs (threads: `_harness`) -------------------------------------------------------------------------------
LATENCY_TEXTS = 200
WARMUP = 20


def labels_of(rows: list[dict]) -> list[dict]:
    """The predicted labels (and regression values rounded to 1e-3) without scores: what a decision depends on."""
    return [{name: value["label"] if "label" in value else round(value["value"], 3) if "value" in value
             else [p["label"] for p in value] for name, value in row.items()} for row in rows]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a saved multigroup model folder")
    parser.add_argument("--data-dir", required=True, help="folder with test.jsonl")
    parser.add_argument("--output", default=str(RESULTS / "bench_onnx"))
    args = parser.parse_args()

    import numpy as np
    import torch
    from transformers import AutoTokenizer

    from multigroup import AutoModelForMultiGroupClassification
    from multigroup.data import load_table
    from multigroup.inference import batched_logits
    from multigroup.metrics import compute_metrics
    from multigroup.onnx import OnnxMultiGroupClassifier, export_onnx

    quiet_logging()
    torch.set_num_threads(THREADS)
    model = AutoModelForMultiGroupClassification.from_pretrained(args.model).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    config = model.config
    table = load_table(Path(args.data_dir) / "test.jsonl")
    texts = table["text"]
    labels = np.array([config.encode_labels(row) for row in table], dtype=np.float32)

    with tempfile.TemporaryDirectory() as folder:
        export_onnx(args.model, folder, quantize=True)
        backends = {"onnx_fp32": OnnxMultiGroupClassifier(folder, threads=THREADS),
                    "onnx_int8": OnnxMultiGroupClassifier(folder, quantized=True, threads=THREADS)}  # fmt: skip
        logits = {"eager": batched_logits(model, tokenizer, texts, 32)}
        logits.update({name: backend.logits(texts, 32) for name, backend in backends.items()})
        quality = {}
        for name, values in logits.items():
            metrics = compute_metrics(config, values, labels)
            quality[name] = {key: metrics[key] for key in metrics if key.endswith(("f1_micro", "f1_macro"))}
            quality[name]["max_abs_logit_diff_vs_eager"] = float(np.abs(values - logits["eager"]).max())
            quality[name]["same_labels_as_eager"] = labels_of(config.decode(values)) == labels_of(
                config.decode(logits["eager"])
            )

        def eager_one(text):
            with torch.inference_mode():
                model(**tokenizer(text, return_tensors="pt"))

        arms = {
            "eager": eager_one,
            **{name: (lambda text, b=backend: b.logits([text], 1)) for name, backend in backends.items()},
        }
        samples = interleaved(arms, repeats=texts[:LATENCY_TEXTS], warmup=texts[:WARMUP])  # each text, every arm
    milliseconds = {name: [1000 * value for value in values] for name, values in samples.items()}
    latency = {name: {"p50_ms": statistics.median(ms), "p95_ms": p95(ms)} for name, ms in milliseconds.items()}
    for name in backends:
        latency[name]["speedup_vs_eager_p50"] = latency["eager"]["p50_ms"] / latency[name]["p50_ms"]

    results = {"model": args.model, "threads": THREADS, "latency": latency, "quality": quality}
    groups = config.group_names
    lines = ["| backend | batch-1 p50 (ms) | p95 (ms) | speed-up | max logit diff | "
             + " | ".join(f"{g} micro / macro F1" for g in groups) + " | same labels as eager |",
             "|---|---|---|---|---|" + "---|" * len(groups) + "---|"]  # fmt: skip
    for name in arms:
        q, lat = quality[name], latency[name]
        scores = " | ".join(f"{q[f'{g}_f1_micro']:.4f} / {q[f'{g}_f1_macro']:.4f}" for g in groups)
        lines.append(f"| {name} | {lat['p50_ms']:.1f} | {lat['p95_ms']:.1f} | {lat.get('speedup_vs_eager_p50', 1.0):.2f} "
                     f"| {q['max_abs_logit_diff_vs_eager']:.2e} | {scores} | {q['same_labels_as_eager']} |")  # fmt: skip
    write_results(args.output, results, "\n".join(lines))


if __name__ == "__main__":
    main()
