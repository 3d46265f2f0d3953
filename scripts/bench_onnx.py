"""ONNX Runtime against eager PyTorch: per-group F1 (fp32 and int8), batch-1 latency and batch-32 throughput.

    multigroup train ... --output-dir out/rest                  # a trained model (any folder `train` wrote)
    python scripts/bench_onnx.py --model out/rest --data-dir ../shared/data/semeval16_absa_rest_en

Exports the model as `multigroup export onnx --quantize --check-file DATA/validation.jsonl` does (the int8 recipe
chosen on the validation file), then on the test split, gold labels the model lacks counted as misses: per-group
micro / macro F1 of each backend (same thresholds, same decode), its worst drop against eager PyTorch, whether
every label is eager's, single-text latency medians over interleaved repeats and batch-32 throughput. Writes
scripts/results/bench_onnx_DATA.{json,md}.
"""

import argparse
import statistics
import tempfile
from pathlib import Path

from _harness import RESULTS, THREADS, interleaved, machine, medians, p95, quiet_logging, timed, write_results

# -- knobs (threads: `_harness`) -------------------------------------------------------------------------------
LATENCY_TEXTS = 200
WARMUP = 20
THROUGHPUT_REPEATS = 3


def decisions(config, logits):
    """Every label choice per text, one column each: the multiclass index, then each multilabel yes / no."""
    import torch

    parts = [p["index"][:, None] if "index" in p else p["selected"] for p in config.group_predictions(logits).values()
             if "values" not in p]  # fmt: skip
    return torch.cat([torch.as_tensor(part).long() for part in parts], dim=1).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a saved multigroup model folder")
    parser.add_argument("--data-dir", required=True, help="folder with validation.jsonl and test.jsonl")
    parser.add_argument("--output", help="results path without suffix (default scripts/results/bench_onnx_DATA)")
    args = parser.parse_args()
    output = args.output or str(RESULTS / f"bench_onnx_{Path(args.data_dir).name}")

    import numpy as np
    import torch
    from transformers import AutoTokenizer

    import multigroup
    from multigroup import AutoModelForMultiGroupClassification
    from multigroup.data import labelled_file
    from multigroup.inference import batched_logits
    from multigroup.metrics import compute_metrics
    from multigroup.onnx import OnnxMultiGroupClassifier, export_onnx, quantize_onnx

    quiet_logging(datasets=True)
    torch.set_num_threads(THREADS)
    model = AutoModelForMultiGroupClassification.from_pretrained(args.model).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    config = model.config
    texts, labels, missed = labelled_file(Path(args.data_dir) / "test.jsonl", tokenizer, config)

    with tempfile.TemporaryDirectory() as folder:
        export_onnx(args.model, folder)
        int8_report = quantize_onnx(folder, Path(args.data_dir) / "validation.jsonl")
        backends = {"onnx_fp32": OnnxMultiGroupClassifier(folder, threads=THREADS),
                    "onnx_int8": OnnxMultiGroupClassifier(folder, quantized=True, threads=THREADS)}  # fmt: skip
        batch = {"eager": lambda items: batched_logits(model, tokenizer, items, 32)}
        batch.update({name: (lambda items, b=backend: b.logits(items, 32)) for name, backend in backends.items()})
        logits = {name: run(texts) for name, run in batch.items()}
        quality = {}
        for name, values in logits.items():
            metrics = compute_metrics(config, values, labels, missed=missed)
            quality[name] = {key: metrics[key] for key in metrics if key.endswith(("f1_micro", "f1_macro"))}
            quality[name]["max_abs_logit_diff_vs_eager"] = float(np.abs(values - logits["eager"]).max())
            differs = (decisions(config, values) != decisions(config, logits["eager"])).any(axis=1)
            quality[name]["texts_with_other_labels_than_eager"] = int(differs.sum())
            # a text's logits alone (batch 1) against within batches of 32: int8 quantizes activations per batch
            alone = np.concatenate([batch[name]([text]) for text in texts[:LATENCY_TEXTS]])
            quality[name]["max_logit_diff_batch1_vs_batch32"] = float(np.abs(alone - values[:LATENCY_TEXTS]).max())

        def eager_one(text):
            with torch.inference_mode():
                model(**tokenizer(text, return_tensors="pt"))

        arms = {"eager": eager_one, **{name: (lambda text, b=backend: b.logits([text], 1)) for name, backend in backends.items()}}  # fmt: skip
        samples = interleaved(arms, repeats=texts[:LATENCY_TEXTS], warmup=texts[:WARMUP])  # each text, every arm
        throughput = medians(interleaved({name: (lambda run=run: timed(run, texts)) for name, run in batch.items()},
                                         repeats=THROUGHPUT_REPEATS, measure=lambda run: run()))  # fmt: skip
    milliseconds = {name: [1000 * value for value in values] for name, values in samples.items()}
    speed = {name: {"batch1_p50_ms": statistics.median(ms), "batch1_p95_ms": p95(ms),
                    "batch32_texts_per_s": len(texts) / throughput[name]} for name, ms in milliseconds.items()}  # fmt: skip
    for name in speed:
        speed[name]["batch1_speedup"] = speed["eager"]["batch1_p50_ms"] / speed[name]["batch1_p50_ms"]
        speed[name]["batch32_speedup"] = speed[name]["batch32_texts_per_s"] / speed["eager"]["batch32_texts_per_s"]
    groups = [group["name"] for group in config.groups if group["type"] != "regression"]
    for name in quality:
        quality[name]["worst_f1_drop_vs_eager"] = max(
            quality["eager"][f"{g}_f1_{kind}"] - quality[name][f"{g}_f1_{kind}"] for g in groups for kind in ("micro", "macro")
        )  # fmt: skip

    results = {"model": args.model, "data": args.data_dir, "test_texts": len(texts), "multigroup": multigroup.__version__,
               "machine": machine(("torch", "transformers", "onnxruntime")), "int8": int8_report, "speed": speed,
               "quality": quality}  # fmt: skip
    lines = ["| backend | " + " | ".join(f"{g} micro / macro F1" for g in groups)
             + " | worst F1 drop | texts with other labels | max logit change, alone vs in a batch "
             "| batch-1 p50 ms (x eager) | batch-32 texts/s (x eager) |",
             "|---|" + "---|" * len(groups) + "---|---|---|---|---|"]  # fmt: skip
    for name in batch:
        q, s = quality[name], speed[name]
        scores = " | ".join(f"{q[f'{g}_f1_micro']:.4f} / {q[f'{g}_f1_macro']:.4f}" for g in groups)
        lines.append(f"| {name} | {scores} | {q['worst_f1_drop_vs_eager']:+.4f} | {q['texts_with_other_labels_than_eager']} "
                     f"| {q['max_logit_diff_batch1_vs_batch32']:.2g} "
                     f"| {s['batch1_p50_ms']:.2f} ({s['batch1_speedup']:.2f}x) "
                     f"| {s['batch32_texts_per_s']:.0f} ({s['batch32_speedup']:.2f}x) |")  # fmt: skip
    write_results(output, results, "\n".join(lines))
    print(
        f"int8 recipe {int8_report['recipe']} (chosen on validation.jsonl; worst drop there per recipe: {int8_report['tried']})"
    )


if __name__ == "__main__":
    main()
