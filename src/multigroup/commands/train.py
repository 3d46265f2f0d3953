"""Fine-tune an encoder on several label groups and save a model that loads with trust_remote_code.

Group columns come from --multiclass/--multilabel/--regression (repeatable; labels are read from the training
file) or from --groups spec.json. Any TrainingArguments flag can follow in the Hugging Face style, for example
`--num_train_epochs 5 --learning_rate 5e-5 --per_device_train_batch_size 32`.
"""

import json
import sys
from pathlib import Path

from .common import (
    UNKNOWN_LABELS_FIX,
    add_calibration_argument,
    add_threshold_rule_argument,
    add_unknown_labels_argument,
)


def register(parser) -> None:
    from ..defaults import TRAINING_DEFAULTS  # no heavy import: --help stays quick

    parser.epilog = (
        "Training defaults (the quality benchmark's best, MiniLM): "
        + " ".join(f"--{key} {value}" for key, value in TRAINING_DEFAULTS.items())
        + "; TrainingArguments' own for the rest (--per_device_train_batch_size 8, --num_train_epochs 3, --seed 42). "
        "Any TrainingArguments flag given wins; the settings used are printed and saved in metrics.json and the card."
    )
    parser.add_argument(
        "--train-file", required=True, help="JSONL, CSV or parquet with a text column and group columns"
    )
    parser.add_argument(
        "--validation-file",
        help="evaluated each epoch; also picks the thresholds (so its final scores are optimistic); default: none, "
        "then no evaluation, and the multilabel thresholds stay the groups' own (0.3 unless --groups sets them)",
    )
    parser.add_argument("--text-column", default="text", help="the column holding the texts")
    # One or more columns per flag, and the flag repeatable: `--multilabel entities aspects` or one flag each.
    for flag, kind in (("--multiclass", "one-label"), ("--multilabel", "many-label"), ("--regression", "numeric")):
        parser.add_argument(
            flag, action="extend", nargs="+", default=[], metavar="COL", help=f"{kind} group column(s)"
        )
    parser.add_argument(
        "--groups", help="a JSON file with the list of groups, instead of the three flags above (default: none)"
    )
    parser.add_argument(
        "--weight", action="append", default=[], metavar="GROUP=W", help="a group's loss weight (repeat); default: 1"
    )
    parser.add_argument(
        "--model", required=True,
        help="encoder folder or Hub id: any encoder-only family of transformers (BERT, RoBERTa, DeBERTa, ModernBERT, "
        "ELECTRA, ...), or a saved multigroup model to train on",
    )  # fmt: skip
    parser.add_argument("--output-dir", required=True, help="where the model, its tokenizer and card are saved")
    parser.add_argument(
        "--loss-weighting", choices=["balanced", "fixed", "normalized", "uncertainty"], default="balanced",
        help="balanced (default): every group pulls on the shared encoder alike, times its --weight",
    )  # fmt: skip
    parser.add_argument("--class-weights", action="store_true", help="weight rare labels up (from train frequencies)")
    add_threshold_rule_argument(parser)
    add_calibration_argument(parser)
    parser.add_argument(
        "--relations", choices=["infer", "none"], default="infer",
        help="infer (default): the relations between groups that hold on every training row (a composed group such "
        "as aspects = entities#attributes, a frequent label that implies another group's), kept by every decode so "
        "predictions never contradict them, and related groups split one share of the balanced gradient; none: each "
        "group decided alone, with a share of its own",
    )  # fmt: skip
    parser.add_argument(
        "--no-tune-thresholds", action="store_true",
        help="keep the groups' own thresholds (0.3 unless --groups sets them); --thresholds fixed sets 0.5",
    )  # fmt: skip
    parser.add_argument(
        "--pooling", choices=["cls", "mean", "attention"], default=None,
        help="how one vector is made of the text's token vectors: cls (the first token's), mean (their average) or "
        "attention (each group's own weighted average, starting as the mean); "
        "default: the checkpoint's own (a saved multigroup model's, or a sentence-transformers model's "
        "1_Pooling/config.json), else cls",
    )  # fmt: skip
    parser.add_argument(
        "--group-top-layer", action="store_true",
        help="give each group its own copy of the encoder's top layer (opt-in: the layer runs once per group; the "
        "README's quality benchmark has what it changed); default: the checkpoint's own (off for a new head)",
    )  # fmt: skip
    parser.add_argument(
        "--head-learning-rate", type=float, default=None,
        help="learning rate of the head; default: 60 times --learning_rate for a new head (6e-3), a saved model's "
        "head_multiplier times it for its own",
    )  # fmt: skip
    parser.add_argument(
        "--max-length", type=int, default=None,
        help="longer texts are cut to this many tokens; default: the tokenizer's model_max_length",
    )  # fmt: skip
    add_unknown_labels_argument(parser, "in --validation-file")
    parser.add_argument(
        "--teachers", nargs="+", default=[], metavar="DIR",
        help="opt-in distillation: saved models (say, multigroup train on each group alone) whose probabilities on "
        "the training texts are the targets at first, moving to the gold labels over training (teacher annealing, "
        "BAM!); each group at most one teacher",
    )  # fmt: skip


def _groups(args, table) -> list[dict]:
    from ..data import infer_groups

    if args.groups:
        if args.multiclass or args.multilabel or args.regression:
            raise ValueError("Give either --groups spec.json or --multiclass/--multilabel/--regression, not both.")
        groups = json.loads(Path(args.groups).read_text())
    elif not (args.multiclass or args.multilabel or args.regression):
        raise ValueError(
            "Name the groups: --multiclass COL, --multilabel COL, --regression COL, or --groups spec.json."
        )
    else:
        groups = infer_groups(table, args.multiclass, args.multilabel, args.regression, source=args.train_file)
    weights = dict(item.split("=", 1) for item in args.weight)
    for group in groups:
        if group["name"] in weights:
            group["weight"] = float(weights.pop(group["name"]))
    if weights:
        raise ValueError(
            f"--weight names unknown group(s) {sorted(weights)}; groups are {[g['name'] for g in groups]}."
        )
    return groups


def _infer_relations(config, table, file: str) -> None:
    """Store (and print) the relations that hold on every row of the training table: also for a model trained
    before, whose relations may not hold on this file (`prepare_dataset` infers them for a new head only)."""
    from ..hub_code.relations_multigroup import normalize_relations
    from ..relations import infer_relations

    config.relations = found = normalize_relations(infer_relations(table, config.groups), config.groups)
    if found:
        shown = [f"{r['compose']} = {r['separator'].join(r['of'])}" if "compose" in r else f"{r['if']} implies "
                 f"{', '.join(r['then'])}" for r in found]  # fmt: skip
        print(f"Relations that hold on every row of {file} (kept by every decode; --relations none to drop them):\n"
              + "\n".join(f"  {line}" for line in shown), file=sys.stderr)  # fmt: skip


def _has_accelerator() -> bool:
    import torch

    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6; CUDA alone before
    return accelerator.is_available() if accelerator is not None else torch.cuda.is_available()


def run(args, extra: list[str]) -> int:
    from importlib.metadata import version

    import numpy as np
    from transformers import AutoTokenizer, DataCollatorWithPadding, Trainer, pipeline, set_seed

    from ..auto import AutoModelForMultiGroupClassification
    from ..data import label_matrix, load_table, prepare_dataset
    from ..defaults import NEW_HEAD, training_arguments
    from ..hub import record_evaluation, record_training, shown_path, split_name
    from ..hub_code.configuration_multigroup import MultiGroupConfig, UnknownLabelError
    from ..hub_code.versions_multigroup import is_hub_id
    from ..metrics import build_compute_metrics, compute_metrics, format_metrics_table
    from ..training import attach_callbacks, build_optimizer, fit_class_weights, fit_loss_scales
    from .common import ENCODER, apply_calibration, apply_threshold_rule, never_predicted, reading_model

    output_dir = Path(args.output_dir)
    fixed = {"report_to": "none", "save_strategy": "no", "logging_strategy": "epoch"}
    if args.validation_file:
        fixed["eval_strategy"] = "epoch"
    if not _has_accelerator():  # pinned memory needs one: torch's DataLoader would warn on every CPU run
        fixed["dataloader_pin_memory"] = "false"
    training_args, settings = training_arguments(extra, str(output_dir / "checkpoints"), **fixed)

    with reading_model(args.model, fix=ENCODER):  # a wrong --model fails now, not after reading a large file
        tokenizer = AutoTokenizer.from_pretrained(args.model)
    train_table = load_table(args.train_file)
    groups = _groups(args, train_table)
    options = {"pooling": args.pooling} if args.pooling else {}
    if args.group_top_layer:
        options["group_top_layer"] = True
    set_seed(training_args.seed)  # the new head's initial weights too: the same --seed trains the same model
    with reading_model(args.model, fix=ENCODER):
        if not MultiGroupConfig.is_saved(MultiGroupConfig.get_config_dict(args.model)[0]):  # a saved head: its own
            options.update(NEW_HEAD)
        model = AutoModelForMultiGroupClassification.from_pretrained(
            args.model, groups=groups, loss_weighting=args.loss_weighting, **options
        )
    model.config.base_model = args.model if is_hub_id(args.model) else None  # never a path on this machine
    config = model.config
    if args.relations == "infer":
        _infer_relations(config, train_table, args.train_file)
    else:
        config.relations = []
    # --unknown-labels covers the validation file only: a training label outside --groups is an error.
    try:
        train = prepare_dataset(
            train_table, tokenizer, config, args.text_column, args.max_length, source=args.train_file
        )
    except UnknownLabelError as error:  # no flag drops them: the groups must hold every training label
        raise error.with_fix("Add the label to --groups, or remove it from the training file.") from None
    train_labels = label_matrix(train)  # from the Arrow column: no Python list per row
    collator, callbacks = DataCollatorWithPadding(tokenizer), []
    if args.teachers:
        from ..distill import TeacherAnnealing, TeacherMix, teacher_targets, with_teacher_columns

        texts = train_table[args.text_column]
        train = with_teacher_columns(train, teacher_targets(config, args.teachers, texts))
        collator = TeacherMix(collator, config.num_columns)
        callbacks.append(TeacherAnnealing(collator))
    if args.loss_weighting != "fixed":  # under "balanced" the scales only make the logged losses comparable
        fit_loss_scales(config, train_labels)
    if args.class_weights:
        fit_class_weights(config, train_labels)
    validation = None
    if args.validation_file:
        try:
            validation = prepare_dataset(
                load_table(args.validation_file), tokenizer, config, args.text_column, args.max_length,
                ignore_unknown_labels=args.unknown_labels == "miss", source=args.validation_file,
            )  # fmt: skip
        except UnknownLabelError as error:
            raise error.with_fix(UNKNOWN_LABELS_FIX) from None

    rule = None if args.no_tune_thresholds else args.thresholds
    head_rate = args.head_learning_rate or training_args.learning_rate * config.head_multiplier
    training = {
        "encoder": args.model, "train_file": args.train_file, "validation_file": args.validation_file,
        **settings, "head_learning_rate": head_rate,
        "max_length": args.max_length, "pooling": config.pooling, "group_top_layer": config.group_top_layer,
        "loss_weighting": config.loss_weighting,
        "class_weights": args.class_weights, "thresholds": rule if args.validation_file else None,
        "calibrated": bool(args.calibrate and args.validation_file), "relations": args.relations,
        "teachers": [shown_path(folder) for folder in args.teachers] or None, "multigroup": version("multigroup"),
    }  # fmt: skip
    shown = ", ".join(
        f"{key} {training[key]}" + (" (default)" if key in settings["from_defaults"] else "")
        for key in ("learning_rate", "warmup_steps", "train_sampling_strategy", "num_train_epochs", "train_batch_size",
                    "seed")
    )  # fmt: skip
    print(f"Training with {shown}; head rate {training['head_learning_rate']:g}. Any TrainingArguments flag "
          "changes these.", file=sys.stderr)  # fmt: skip
    # Trainer's own optimizer unless the head's rate is set by hand (the model's head_multiplier does the rest).
    optimizer = None
    if args.head_learning_rate is not None:
        rates = (training_args.learning_rate, args.head_learning_rate, training_args.weight_decay)
        optimizer = build_optimizer(model, *rates)
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=validation,
        compute_metrics=build_compute_metrics(config) if validation is not None else None,
        data_collator=collator,
        optimizers=(optimizer, None),
        callbacks=callbacks,
    )
    attach_callbacks(trainer)
    trainer.train()

    evaluation = None
    if validation is not None:
        prediction = trainer.predict(validation)  # label_ids come in the same order as the predictions
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        labels = np.asarray(prediction.label_ids, dtype=np.float32)
        used_for = ["checkpoint"] if training_args.load_best_model_at_end else []
        if args.calibrate and any(g["type"] != "regression" for g in config.groups):
            apply_calibration(config, logits, labels, args.validation_file)
            used_for.insert(0, "temperatures")
        if any(g["type"] == "multilabel" for g in config.groups) and rule is not None:
            apply_threshold_rule(config, logits, labels, rule, args.validation_file)
            used_for.insert(0, "thresholds")
        metrics = compute_metrics(config, logits, labels)
        for note in never_predicted(config, logits, labels):
            print(f"Note: {note}", file=sys.stderr)
        caveat = f" (it also chose the {' and '.join(used_for)}: optimistic)" if used_for else ""
        print(
            f"\nValidation, final model, on {args.validation_file}{caveat}\n" + format_metrics_table(metrics, config)
        )
        split = split_name(args.validation_file)
        evaluation = {"file": args.validation_file, "split": split, "used_for": used_for, "metrics": metrics}

    pipeline("multi-group-classification", model=model, tokenizer=tokenizer).save_pretrained(output_dir)
    record_training(output_dir, training)
    if evaluation is not None:
        record_evaluation(output_dir, evaluation, keep_others=False)
        print(f"Scores on held-out data: multigroup evaluate --model {output_dir} --file TEST_FILE", file=sys.stderr)
    checkpoints = output_dir / "checkpoints"
    if checkpoints.is_dir() and not any(checkpoints.iterdir()):  # Trainer's output_dir, unused with save "no"
        checkpoints.rmdir()
    print(f"Saved to {output_dir}", file=sys.stderr)
    return 0
