"""Fit per-label multilabel thresholds on labelled validation data and save them in the model's config."""

import json
import shutil
from pathlib import Path


def register(parser) -> None:
    from .common import add_labelled_file_arguments

    add_labelled_file_arguments(parser, "labelled validation data (never the test set)")
    parser.add_argument("--output-dir", help="where to save the tuned model (default: update --model in place)")
    parser.add_argument("--per-group", action="store_true", help="one threshold per group (micro F1), not per label")


def run(args, extra: list[str]) -> int:
    from ..metrics import compute_metrics
    from ..training import tune_thresholds
    from .common import labelled_logits

    model, logits, labels = labelled_logits(args)
    config = model.config
    before = compute_metrics(config, logits, labels)
    tuned = tune_thresholds(config, logits, labels, per_label=not args.per_group)
    if not tuned:
        raise ValueError(f"The model has no multilabel group to tune; its groups are {config.group_names}.")
    after = compute_metrics(config, logits, labels)
    for name, thresholds in tuned.items():
        print(f"{name}: thresholds {json.dumps(thresholds)}")
        for key in ("f1_micro", "f1_macro"):
            print(f"  {key}: {before[f'{name}_{key}']:.4f} -> {after[f'{name}_{key}']:.4f}")
    target = Path(args.output_dir or args.model)
    if target != Path(args.model):
        shutil.copytree(args.model, target, dirs_exist_ok=True)
    config.save_pretrained(target)
    print(f"Saved the thresholds in {target / 'config.json'}")
    return 0
