"""Per-label test F1 of the quality benchmark's models, read from its cache: where one arm trails another.

    python scripts/bench_quality.py --data-dir ../shared/data/semeval16_absa_laptops_en --epochs 2 --seeds 0 1 2 3
    python scripts/per_label.py --data-dir ../shared/data/semeval16_absa_laptops_en --epochs 2 --seeds 0 1 2 3

For each group and label (each class of a multiclass group): its count in the test split and its test F1 per arm,
mean over the seeds, scored as `bench_quality.py` scores (each model decoded with the relations it keeps), and the
mean average precision of each group's labels with a test text (threshold-free: does an arm rank a label's texts
worse, or only decide worse? the scores the model reports, a multiclass group's after its temperature; relations
change decisions, not scores, so `joint_alone` ranks as `joint`);
`joint_alone` is the joint model with every group decided alone (no relations). Then each group's macro-F1 over its
labels with at least --min-count test texts and over the rarer ones that have one (a label with none scores 0 in
every arm): a label with a handful of test texts moves
macro-F1 by up to 1 / (number of labels) with one text. Only arms whose models are all in the cache are shown (a
dataset without relations shows `joint_alone` equal to `joint`).
Writes scripts/results/per_label_<data>_e<epochs>[_batch<N>].{json,md}.
"""

import argparse
import copy
import json
from pathlib import Path

from bench_quality import cache_arguments, cache_folder, gold, model_paths, spec_from_data, write_cache_results

ARMS = ("plain", "joint", "joint_alone", "single", "distill")


def label_f1(spec: dict, logits, data: dict) -> dict[str, dict[str, dict]]:
    """Per group, per label: its test F1 and support (`multigroup.metrics.classification_report`), and its average
    precision (`ap`: how well its scores rank the test texts, whatever the threshold; None without a positive), one
    model."""
    from sklearn.metrics import average_precision_score

    from multigroup import MultiGroupConfig
    from multigroup.metrics import _groups_arrays, classification_report

    config = MultiGroupConfig(**copy.deepcopy(spec))
    test, _ = gold(config, data["test"])
    report = classification_report(config, logits, test)
    out = {group: {row["label"]: row for row in rows} for group, rows in report.items()}
    for group, y_true, _, scores in _groups_arrays(config, logits, test):
        if scores is None:  # a regression group: nothing to rank
            continue
        for j, label in enumerate(group["labels"]):
            positives = y_true[:, j].any()
            out[group["name"]][label]["ap"] = (
                average_precision_score(y_true[:, j], scores[:, j]) if positives else None
            )
    return out


def arm_scores(arm: str, groups: list[dict], data: dict, cache: Path, epochs: float, seed: int) -> dict | None:
    """`label_f1` for every group of one arm and seed from the cached logits; None if a model is missing."""
    import numpy as np

    paths = model_paths(arm.removesuffix("_alone"), groups, cache, epochs, seed)
    if not all(path.exists() for path in paths):
        return None
    out = {}
    for i, path in enumerate(paths):
        stored = np.load(path)
        saved = {"groups": [groups[i]] if arm == "single" else groups}  # a cache from before specs were stored
        spec = json.loads(str(stored["spec"])) if "spec" in stored else saved
        if arm.endswith("_alone"):
            spec["relations"] = []
        out |= label_f1(spec, stored["test"], data)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cache_arguments(parser)
    parser.add_argument("--min-count", type=int, default=8, help="test texts a label needs to count as common")
    args = parser.parse_args()

    import statistics

    from multigroup.data import load_table

    data_dir = Path(args.data_dir)
    data = {split: load_table(data_dir / f"{split}.jsonl") for split in ("train", "test")}
    groups = spec_from_data(data["train"])
    cache = cache_folder(args.cache_dir, data_dir, args.batch_size)
    runs = {arm: [arm_scores(arm, groups, data, cache, args.epochs, seed) for seed in args.seeds] for arm in ARMS}
    runs = {arm: seeds for arm, seeds in runs.items() if all(seeds)}
    if not runs:
        parser.error(f"no arm has every model for these seeds in {cache}: run scripts/bench_quality.py first")
    table, lines = {}, [f"Test F1 per label, mean over seeds {args.seeds}, {args.epochs:g} epochs, `{data_dir.name}`."]
    for group in groups:
        name, labels = group["name"], group["labels"]
        counts = {label: next(iter(runs.values()))[0][name][label]["support"] for label in labels}
        means = {arm: {label: statistics.mean(run[name][label]["f1"] for run in seeds) for label in labels}
                 for arm, seeds in runs.items()}  # fmt: skip
        table[name] = {"test_counts": counts, "f1": means, "macro": {}}
        lines += ["", f"**{name}**", "", "| label | test texts | " + " | ".join(means) + " |"]
        lines.append("|---" * (2 + len(means)) + "|")
        for label in sorted(labels, key=lambda label: -counts[label]):
            cells = " | ".join(f"{f1[label]:.3f}" for f1 in means.values())
            lines.append(f"| {label} | {counts[label]} | {cells} |")
        common = [label for label in labels if counts[label] >= args.min_count]
        parts = {"all": labels, f">= {args.min_count} test texts": common,
                 "rarer, with a test text": [label for label in labels if 0 < counts[label] < args.min_count]}  # fmt: skip
        for part, chosen in parts.items():
            if chosen and (part == "all" or len(chosen) < len(labels)):
                macro = {arm: statistics.mean(f1[label] for label in chosen) for arm, f1 in means.items()}
                table[name]["macro"][part] = macro
                cells = " | ".join(f"{value:.3f}" for value in macro.values())
                lines.append(f"| macro-F1, {part} ({len(chosen)} of {len(labels)}) | | {cells} |")
        # Threshold-free: the mean over labels with a test text of their average precision (the ranking alone)
        ranked = [label for label in labels if counts[label] > 0]
        aps = {arm: {label: statistics.mean(run[name][label]["ap"] for run in seeds) for label in ranked}
               for arm, seeds in runs.items()}  # fmt: skip
        table[name]["ap"], table[name]["mean_ap"] = aps, {}
        for part, chosen in parts.items():
            chosen = [label for label in chosen if label in ranked]
            if chosen and (part == "all" or len(chosen) < len(ranked)):
                mean_ap = {arm: statistics.mean(ap[label] for label in chosen) for arm, ap in aps.items()}
                table[name]["mean_ap"][part] = mean_ap
                cells = " | ".join(f"{value:.3f}" for value in mean_ap.values())
                lines.append(f"| mean average precision, {part} ({len(chosen)} of {len(ranked)}) | | {cells} |")
    write_cache_results("per_label", args, table, lines, min_count=args.min_count)


if __name__ == "__main__":
    main()
