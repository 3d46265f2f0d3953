"""The README's quality tables, from the results `scripts/bench_quality.py` wrote (scripts/results/*.json).

    python scripts/quality_tables.py

Prints, per dataset: the arms (each with the thresholds its model saved: `multigroup train`'s default rule for
joint, single and distill, the spec's 0.3 for plain) at each budget; the threshold rules on the joint model; and
the batch-32 runs, when their results exist.
"""

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
DATASETS = ["semeval16_absa_rest_en", "semeval16_absa_laptops_en"]
MAIN_ROWS = [(arm, "model's own") for arm in ("plain", "joint", "single", "distill")]
MAIN_ROWS.append(("joint_equal_shares", "shrunk"))  # trained in-process: thresholds as `train` tunes them
BATCH32_ROWS = [(arm, "model's own") for arm in ("plain", "joint", "joint_shared_dense", "joint_normalized")]
RULES = ["shrunk", "per_label", "per_group", "fixed"]


def cell(entry: dict, key: str) -> str:
    return f"{entry[key]['mean']:.3f} ±{entry[key]['spread']:.3f}"


def arms_table(results: dict, rows: list[tuple[str, str]]) -> list[str]:
    groups = [group["name"] for group in results["groups"]]
    lines = ["| epochs | arm | seeds | " + " | ".join(f"{g} macro-F1 | {g} micro-F1" for g in groups) + " | train s |"]
    lines.append("|---" * (4 + 2 * len(groups)) + "|")
    for epochs, table in results["table"].items():
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
    for epochs, table in results["table"].items():
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


def main() -> None:
    for name in DATASETS:
        path = RESULTS / f"bench_quality_{name}.json"
        if not path.exists():
            continue
        results = json.loads(path.read_text())
        print(f"\n#### {name}: arms (test split, mean ± spread over the seeds named)\n")
        print("\n".join(arms_table(results, MAIN_ROWS)))
        print(f"\n#### {name}: threshold rules on the joint model (test micro-F1 / macro-F1, mean over seeds)\n")
        print("\n".join(rules_table(results)))
        ablation = RESULTS / f"bench_quality_{name}_batch32.json"
        if ablation.exists():
            results = json.loads(ablation.read_text())
            print(f"\n#### {name}: batch 32 (test split, mean ± spread over the seeds named)\n")
            print("\n".join(arms_table(results, BATCH32_ROWS)))


if __name__ == "__main__":
    main()
