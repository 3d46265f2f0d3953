"""Fit the temperatures and pick the multilabel thresholds on labelled validation data, save them in the config, and
rewrite the card."""

import shutil
from pathlib import Path

from .common import add_calibration_argument, add_threshold_rule_argument


def register(parser) -> None:
    from .common import add_labelled_file_arguments

    add_labelled_file_arguments(parser, "labelled validation data (never the test set)", onnx=False)
    parser.add_argument("--output-dir", help="where to save the tuned model (default: update --model in place)")
    add_threshold_rule_argument(parser)
    parser.add_argument("--per-group", action="store_true", help="the same as --thresholds per_group")
    add_calibration_argument(parser)


def run(args, extra: list[str]) -> int:
    from ..hub import record_evaluation, split_name
    from ..metrics import compute_metrics
    from .common import apply_calibration, apply_threshold_rule, labelled_logits

    config, logits, labels, missed = labelled_logits(args)
    multilabel = any(group["type"] == "multilabel" for group in config.groups)
    if not any(group["type"] != "regression" for group in config.groups):
        raise ValueError(f"The model has no classification group to tune; its groups are {config.group_names}.")
    if not multilabel and not args.calibrate:
        raise ValueError("Nothing to tune: no multilabel group here; drop --no-calibrate to fit temperatures.")
    used_for = []  # as `train` records them: the thresholds first
    if args.calibrate:  # first: the thresholds are stored on the calibrated scale
        apply_calibration(config, logits, labels, args.file)
        used_for.append("temperatures")
    else:  # the raw scores: a temperature fitted before goes (its thresholds back on the raw scale)
        from ..calibration import set_temperature

        for group in config.groups:
            if group["type"] != "regression":
                set_temperature(group, None)
    if multilabel:
        apply_threshold_rule(config, logits, labels, "per_group" if args.per_group else args.thresholds, args.file)
        used_for.insert(0, "thresholds")
    target = Path(args.output_dir or args.model)
    if target != Path(args.model):
        shutil.copytree(args.model, target, dirs_exist_ok=True)
    config.save_pretrained(target)
    # Scores recorded with the old thresholds no longer describe the model: only this file's stays, marked.
    evaluation = {"file": args.file, "split": split_name(args.file), "used_for": used_for,
                  "metrics": compute_metrics(config, logits, labels, missed=missed)}  # fmt: skip
    record_evaluation(target, evaluation, keep_others=False)
    print(f"Saved the {' and '.join(used_for)} in {target / 'config.json'}; rewrote metrics.json and README.md there")
    print("Scores on held-out data: multigroup evaluate --model MODEL --file TEST_FILE")
    return 0
