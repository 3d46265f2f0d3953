"""The README's quality tables, from the results `scripts/bench_quality.py` wrote (scripts/results/*.json).

    python scripts/quality_tables.py
    python scripts/quality_tables.py scripts/results/attn/bench_quality_semeval16_absa_rest_en.json   # a recipe's

Prints, per dataset: the arms (each with the thresholds its model saved: `multigroup train`'s default rule for
joint, single and distill, the spec's 0.3 for plain) at each budget; their differences, paired by seed (joint and
distill against one model per group, plain against joint); the threshold rules on the joint model; and the batch-32
runs, when their results exist.
"""

import argparse
import json
from pathlib import Path

from bench_quality import RESULTS, batch_suffix, budgets

DATASETS = ["semeval16_absa_rest_en", "semeval16_absa_laptops_en"]
MAIN_ROWS = [(arm, "model's own") for arm in ("plain", "joint", "single", "distill")]
MAIN_ROWS.append(("joint_equal_shares", "shrunk"))  # trained in-process: thresholds as `train` tunes them
BATCH32_ROWS = [(arm, "model's own") for arm in ("plain", "joint", "joint_shared_dense", "joint_normalized")]
RULES = ["shrunk", "per_label", "per_group", "fixed"]
GAP_ROWS = [("joint", "single"), ("distill", "single"), ("plain", "joint")]  # (arm, reference), paired by seed


def cell(entry: dict, key: str) -> str:
    return f"{entry[key]['mean']:.3f} ±{entry[key]['spread']:.3f}"


def arms_table(results: dict, rows: list[tuple[str, str]]) -> list[str]:
    groups = [group["name"] for group in results["groups"]]
    lines = ["| epochs | arm | seeds | " + " | ".join(f"{g} macro-F1 | {g} micro-F1" for g in groups) + " | train s |"]
    lines.append("|---" * (4 + 2 * len(groups)) + "|")
    for epochs, table in budgets(results):
        for arm, rule in rows:
            entry = table.get(f"{arm}/{rule}")
            if entry is None:
                continue
            cells = [
                f"{cell(entry['groups'][g], 'f1_macro')} | {cell(entry['groups'][g], 'f1_micro')}" for g in groups
            ]
            seeds = ",".join(map(str, entry.get("seeds", results["seeds"])))
            name = arm if rule == "model's own" else f"{arm} ({rule})"
            row = f"| {epochs} | {name} | {seeds} | " + " | ".join(cells) + f" | {entry['train_seconds']:.0f} |"
            lines.append(row)
    return lines


def rules_table(results: dict) -> list[str]:
    groups = [group["name"] for group in results["groups"] if group["type"] == "multilabel"]
    gold = results["gold_per_text"]
    lines = [
        "| epochs | rule | "
        + " | ".join(f"{g} micro / macro (labels per text, gold {gold[g]:.2f})" for g in groups)
        + " |"
    ]
    lines.append("|---" * (2 + len(groups)) + "|")
    for epochs, table in budgets(results):
        for rule in RULES:
            entry = table.get(f"joint/{rule}")
            if entry is None:
                continue
            cells = []
            for g in groups:
                m = entry["groups"][g]
                cells.append(
                    f"{m['f1_micro']['mean']:.3f} / {m['f1_macro']['mean']:.3f} ({m['predicted_per_text']['mean']:.2f})"
                )
            lines.append(f"| {epochs} | {rule} | " + " | ".join(cells) + " |")
    return lines


def gaps_table(results: dict, rows: list[tuple[str, str]]) -> list[str]:
    """Each arm minus the reference arm, seed by seed (the same seed's runs differ only in the arm): the mean of those
    differences and, in brackets, the lowest and highest. `rows`: (arm, reference)."""
    groups = [group["name"] for group in results["groups"] if group["type"] != "regression"]
    lines = ["| epochs | arm - reference | seeds | " + " | ".join(f"{g} macro | {g} micro" for g in groups) + " |"]
    lines.append("|---" * (3 + 2 * len(groups)) + "|")
    for epochs, table in budgets(results):
        for arm, reference in rows:
            runs = [table.get(f"{name}/model's own") for name in (arm, reference)]
            if None in runs:
                continue
            by_seed = [dict(zip(run.get("seeds", results["seeds"]), run["per_seed"])) for run in runs]
            seeds = sorted(set(by_seed[0]) & set(by_seed[1]))
            if not seeds:
                continue
            cells = []
            for g in groups:
                for kind in ("f1_macro", "f1_micro"):
                    gaps = [by_seed[0][seed][g][kind] - by_seed[1][seed][g][kind] for seed in seeds]
                    cells.append(f"{sum(gaps) / len(gaps):+.3f} [{min(gaps):+.3f}, {max(gaps):+.3f}]")
            lines.append(
                f"| {epochs} | {arm} - {reference} | {','.join(map(str, seeds))} | " + " | ".join(cells) + " |"
            )
    return lines


def recipe_gaps(path: str) -> None:
    """A recipe's results (`bench_quality.py --train-args ... --output PATH`) against the product's, paired by seed:
    each arm the recipe ran minus the same arm of the product, on the same data, batch and budget (a plain recipe also
    minus `multigroup train` as typed, the plain path's target; a joint recipe also minus one model per group, the
    joint model's target)."""
    recipe = json.loads(Path(path).read_text())
    name = Path(recipe["data"]).name
    suffix = batch_suffix(recipe["knobs"].get("batch_size", 8))  # results from before the knob: batch 8
    product_path = RESULTS / f"bench_quality_{name}{suffix}.json"
    if not product_path.is_file():
        raise SystemExit(
            f"{path}: no product results to compare with ({product_path}); run bench_quality.py on {name}"
        )
    product = json.loads(product_path.read_text())
    for epochs, table in recipe["table"].items():
        for key, entry in table.items():
            if key.endswith("/model's own") and epochs in product["table"]:
                product["table"][epochs][f"recipe_{key}"] = entry
    arms = sorted({key.split("/")[0] for table in recipe["table"].values() for key in table})
    print(f"\n#### {name}: {path} against the product, paired by seed (mean [lowest, highest])\n")
    against = [(f"recipe_{arm}", arm) for arm in arms] + [("recipe_plain", "joint")] * ("plain" in arms)
    against += [("recipe_joint", "single")] * ("joint" in arms)
    print("\n".join(gaps_table(product, against)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipes", nargs="*", help="a recipe's results (bench_quality.py --output): its gaps only")
    args = parser.parse_args()
    for path in args.recipes:
        if not Path(path).is_file():
            parser.error(f"no results file {path}: give the .json that `bench_quality.py --output PATH` wrote")
    if args.recipes:
        for path in args.recipes:
            recipe_gaps(path)
        return
    for name in DATASETS:
        path = RESULTS / f"bench_quality_{name}.json"
        if not path.exists():
            continue
        results = json.loads(path.read_text())
        print(f"\n#### {name}: arms (test split, mean ± spread over the seeds named)\n")
        print("\n".join(arms_table(results, MAIN_ROWS)))
        print(f"\n#### {name}: differences, paired by seed (mean [lowest, highest])\n")
        print("\n".join(gaps_table(results, GAP_ROWS)))
        print(f"\n#### {name}: threshold rules on the joint model (test micro-F1 / macro-F1, mean over seeds)\n")
        print("\n".join(rules_table(results)))
        ablation = RESULTS / f"bench_quality_{name}_batch32.json"
        if ablation.exists():
            results = json.loads(ablation.read_text())
            print(f"\n#### {name}: batch 32 (test split, mean ± spread over the seeds named)\n")
            print("\n".join(arms_table(results, BATCH32_ROWS)))
            print("\n".join(["", *gaps_table(results, [("plain", "joint")])]))


if __name__ == "__main__":
    main()
