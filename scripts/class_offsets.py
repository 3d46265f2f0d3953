"""Would a multiclass group's rare classes gain from per-class offsets tuned on validation? A probe over the quality
benchmark's cached models (no training), not a decode multigroup ships.

    python scripts/bench_quality.py --data-dir ../shared/data/semeval16_absa_laptops_en --epochs 2 --seeds 0 1 2 3
    python scripts/class_offsets.py --data-dir ../shared/data/semeval16_absa_laptops_en --epochs 2 --seeds 0 1 2 3

`decode` picks a multiclass group's most likely class, which is not what maximizes macro-F1 when a model gives its
rare classes low probabilities (on SemEval laptops the joint model's `polarity` ranks as well as a model of its own,
mean average precision 0.574 vs 0.571, but scores 0.077 F1 on `neutral` against 0.169: `scripts/per_label.py`).
Each arm's multiclass groups are decided three ways on test: `argmax` (the decode, where no relation involves the
group), `tuned` (an offset per class added to the log-probabilities, chosen by coordinate ascent for
validation macro-F1) and `shrunk` (those offsets times n / (n + --strength) for a class with n validation texts, as
`multigroup.thresholds`' `shrunk` does for thresholds). Test macro-F1 / micro-F1, mean over the seeds.
Writes scripts/results/class_offsets_<data>_e<epochs>[_batch<N>].{json,md}.
"""

import argparse
import copy
import json
import statistics
from pathlib import Path

from bench_quality import cache_arguments, cache_folder, gold, model_paths, spec_from_data, write_cache_results

ARMS = ("plain", "joint", "single", "distill")


def macro_f1(truth, predicted, classes: int) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(truth, predicted, average="macro", labels=range(classes), zero_division=0))


def tuned_offsets(log_probs, truth, classes: int):
    """Per-class offsets (log-probability, -3 to 3 by 0.1) for validation macro-F1: three passes of coordinate
    ascent, each class's value the middle of its best plateau (`multigroup.thresholds`' rule)."""
    import numpy as np

    from multigroup.thresholds import _best

    grid, offsets = np.round(np.arange(-3, 3.01, 0.1), 1), np.zeros(classes)
    for _ in range(3):
        for c in range(classes):
            scores = []
            for value in grid:
                offsets[c] = value
                scores.append(macro_f1(truth, (log_probs + offsets).argmax(1), classes))
            offsets[c] = _best(scores, grid)
    return offsets


def decided(path: Path, data: dict, strength: float) -> dict[str, dict[str, tuple[float, float]]]:
    """Per multiclass group of one cached model: {way: (test macro-F1, test micro-F1)}."""
    import numpy as np

    from multigroup import MultiGroupConfig

    stored = np.load(path)
    config = MultiGroupConfig(**copy.deepcopy(json.loads(str(stored["spec"]))))
    out = {}
    for group in config.groups:
        if group["type"] != "multiclass":
            continue
        columns, classes = config.group_slices[group["name"]], len(group["labels"])
        truth, log_probs = {}, {}
        for split in ("validation", "test"):
            labels, _ = gold(config, data[split])
            present = ~np.isnan(labels[:, columns]).any(1)  # rows without the group's class are left out
            truth[split] = labels[present, columns].argmax(1)
            logits = stored[split][present, columns].astype(np.float64)
            logits -= logits.max(1, keepdims=True)
            log_probs[split] = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        offsets = tuned_offsets(log_probs["validation"], truth["validation"], classes)
        seen = np.bincount(truth["validation"], minlength=classes)
        ways = {"argmax": np.zeros(classes), "tuned": offsets, "shrunk": offsets * seen / (seen + strength)}
        out[group["name"]] = {}
        for way, chosen in ways.items():
            predicted = (log_probs["test"] + chosen).argmax(1)
            out[group["name"]][way] = (
                macro_f1(truth["test"], predicted, classes),
                float((predicted == truth["test"]).mean()),
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cache_arguments(parser)
    parser.add_argument("--strength", type=float, help="validation texts at which a class keeps half (default: the "
                        "thresholds' STRENGTH)")  # fmt: skip
    args = parser.parse_args()

    from multigroup.data import load_table
    from multigroup.thresholds import STRENGTH

    args.strength = STRENGTH if args.strength is None else args.strength

    data_dir = Path(args.data_dir)
    data = {split: load_table(data_dir / f"{split}.jsonl") for split in ("train", "validation", "test")}
    groups = spec_from_data(data["train"])
    names = [group["name"] for group in groups]
    cache = cache_folder(args.cache_dir, data_dir, args.batch_size)
    table, lines = {}, [f"Multiclass decisions on test, mean over seeds {args.seeds}, {args.epochs:g} epochs, "
                        f"`{data_dir.name}`, strength {args.strength:g}: macro-F1 / micro-F1.", ""]  # fmt: skip
    lines += ["| arm | group | argmax | tuned | shrunk |", "|---|---|---|---|---|"]
    done = {}
    for arm in ARMS:
        for name in (group["name"] for group in groups if group["type"] == "multiclass"):
            i = names.index(name) if arm == "single" else 0  # the single arm: one model per group, in group order
            paths = [model_paths(arm, groups, cache, args.epochs, seed)[i] for seed in args.seeds]
            if not all(path.exists() for path in paths):
                continue
            for path in paths:  # a model with several multiclass groups is decided once
                done[path] = done.get(path) or decided(path, data, args.strength)
            runs = [done[path][name] for path in paths]
            means = {way: [statistics.mean(run[way][k] for run in runs) for k in (0, 1)] for way in runs[0]}
            table.setdefault(arm, {})[name] = means
            cells = " | ".join(f"{macro:.3f} / {micro:.3f}" for macro, micro in means.values())
            lines.append(f"| {arm} | {name} | {cells} |")
    write_cache_results("class_offsets", args, table, lines, strength=args.strength)


if __name__ == "__main__":
    main()
