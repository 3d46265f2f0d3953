"""What several commands share: loading a saved model with its tokenizer, and a labelled file's logits."""

import json
from pathlib import Path


def load_model(model_dir: str):
    from transformers import AutoTokenizer
    from transformers.utils import logging

    from ..auto import AutoModelForMultiGroupClassification

    logging.set_verbosity_error()
    if not (Path(model_dir) / "config.json").is_file() and Path(model_dir).exists():
        raise FileNotFoundError(f"{model_dir} holds no config.json: pass the folder a model was saved to.")
    model = AutoModelForMultiGroupClassification.from_pretrained(model_dir).eval()
    return model, AutoTokenizer.from_pretrained(model_dir)


def add_labelled_file_arguments(parser, file_help: str) -> None:
    """The arguments of commands that score a saved model on a labelled file."""
    parser.add_argument("--model", required=True, help="a saved multigroup model folder")
    parser.add_argument("--file", required=True, help=file_help)
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--ignore-unknown-labels", action="store_true",
        help="accept labels the model has no column for; they count as misses in micro F1, as SemEval's scorer does",
    )  # fmt: skip


def labelled_logits(args):
    """The model, its logits and label rows for `args.file`, and per multilabel group the gold labels the model
    has no column for (dropped with --ignore-unknown-labels, scored as misses); errors name the row or line."""
    import numpy as np

    from ..data import load_table, prepare_dataset
    from ..inference import batched_logits
    from ..metrics import unseen_label_counts

    model, tokenizer = load_model(args.model)
    table = load_table(args.file)
    encoded = prepare_dataset(
        table, tokenizer, model.config, args.text_column, ignore_unknown_labels=args.ignore_unknown_labels,
        ignore_option="--ignore-unknown-labels",
    )  # fmt: skip
    logits = batched_logits(model, tokenizer, table[args.text_column], args.batch_size, progress=True)
    missed = unseen_label_counts(model.config, table) if args.ignore_unknown_labels else {}
    return model, logits, np.array(encoded["labels"], dtype=np.float32), missed


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def add_threshold_rule_argument(parser) -> None:
    from ..thresholds import DEFAULT_RULE, RULES

    parser.add_argument(
        "--thresholds", choices=RULES, default=DEFAULT_RULE,
        help=f"how the multilabel thresholds are picked on the validation data (default {DEFAULT_RULE}: per-label "
        "thresholds pulled toward one per group by how many positives each label has, which held best on unseen "
        "data; per_label: each label's own best, overfits rare labels; per_group: one per group; fixed: 0.5)",
    )  # fmt: skip


def apply_threshold_rule(config, logits, labels, rule: str, file: str) -> dict:
    """Pick and store the thresholds, print them with each group's validation F1 before and after, and a reason
    next to any threshold at the edge of the search range."""
    from ..metrics import compute_metrics
    from ..thresholds import choose_thresholds, edge_notes

    before = compute_metrics(config, logits, labels)
    chosen = choose_thresholds(config, logits, labels, rule=rule)
    after = compute_metrics(config, logits, labels)
    print(f"Thresholds ({rule}) picked on {file}:")
    for name, thresholds in chosen.items():
        print(f"  {name}: {json.dumps(thresholds)}")
        for key in ("f1_micro", "f1_macro"):
            print(f"    {key}: {before[f'{name}_{key}']:.4f} -> {after[f'{name}_{key}']:.4f}")
    for note in edge_notes(chosen, config):
        print(f"  note: {note}")
    return chosen
