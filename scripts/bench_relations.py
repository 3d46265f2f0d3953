"""Relations between groups: contradictions and per-group F1 on the test split, each group decided alone against the
relations inferred from the training file and kept by the decode, over one model per seed.

    multigroup train ... --seed 0 --output-dir out/laptops-0    # (and --seed 1 ...) at train's defaults
    python scripts/bench_relations.py --data-dir ../shared/data/semeval16_absa_laptops_en \
        --model out/laptops-0 out/laptops-1

Temperatures and thresholds are fitted on the validation split as `multigroup train` fits them. Arms, from the
same logits, thresholds and temperatures: `alone` (`decode(..., relations=False)`), `drop` (each group
alone, then every label that contradicts dropped until none does: the simplest rule) and `joint` (the decode's
rule: each conflict decided from both sides' margins; `--slacks` adds it at other `REQUIRED_SLACK` values, to choose
that constant on `--split validation`). Gold labels the model lacks count as misses. Also counts the
predicted labels of a composed group whose parts are missing from the same prediction. Writes
scripts/results/bench_relations_DATA.{json,md}.
"""

import argparse
import copy
import statistics
from pathlib import Path

from _harness import RESULTS, THREADS, machine, quiet_logging, write_results


def dropped(config, predictions):
    """`predictions` with every contradicting label dropped, until none contradicts."""
    import torch

    from multigroup.hub_code.relations_multigroup import relation_columns
    from multigroup.relations import decided_columns

    implies, requires = relation_columns(config.relations, config.groups, config.group_slices)
    on = torch.from_numpy(decided_columns(config, predictions))
    changed = True
    while changed:
        changed = False
        for child, parents in implies:
            bad = on[:, child] & ~on[:, parents].all(-1)
            changed |= bool(bad.any())
            on[bad, child] = False
        for parent, children in requires:
            bad = on[:, parent] & ~on[:, children].any(-1)
            changed |= bool(bad.any())
            on[bad, parent] = False
    out = {}
    for group, columns in zip(config.groups, config.group_slices.values()):
        out[group["name"]] = dict(predictions[group["name"]])
        if group["type"] == "multilabel":
            out[group["name"]]["selected"] = on[:, columns]
    return out


def scores(config, decided, labels, missed) -> dict[str, float]:
    """Each classification group's micro / macro F1 of given decisions, as `compute_metrics` scores them."""
    import numpy as np

    from multigroup.metrics import _micro_f1, counts, f1_from_counts

    out = {}
    for group, columns in zip(config.groups, config.group_slices.values()):
        if group["type"] == "regression":
            continue
        present = ~np.isnan(labels[:, columns]).any(axis=1)
        pred = decided[group["name"]]
        if group["type"] == "multiclass":
            y_pred = np.eye(len(group["labels"]), dtype=bool)[pred["index"].numpy()]
            y_true = np.eye(len(group["labels"]), dtype=bool)[labels[:, columns].argmax(1)]
        else:
            y_pred, y_true = pred["selected"].numpy(), labels[:, columns] > 0.5
        tp, fp, fn = counts(y_true[present], y_pred[present])
        out[f"{group['name']}_f1_micro"] = _micro_f1(tp, fp, fn, missed.get(group["name"], 0))
        out[f"{group['name']}_f1_macro"] = f1_from_counts(tp, fp, fn)[1]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", required=True, help="saved multigroup model folders (one per seed)")
    parser.add_argument("--data-dir", required=True, help="folder with train.jsonl and test.jsonl")
    parser.add_argument("--output", help="results path without suffix (default scripts/results/bench_relations_DATA)")
    parser.add_argument("--split", default="test", help="the split scored (validation: to choose the slack)")
    parser.add_argument(
        "--slacks", nargs="*", type=float, default=[],
        help="also score the decode at these REQUIRED_SLACK values (arms `slack S`), to choose it on validation",
    )  # fmt: skip
    args = parser.parse_args()
    suffix = "" if args.split == "test" else f"_{args.split}"
    output = args.output or str(RESULTS / f"bench_relations_{Path(args.data_dir).name}{suffix}")

    import torch
    from transformers import AutoTokenizer

    import multigroup
    from multigroup import AutoModelForMultiGroupClassification
    from multigroup.calibration import fit_temperatures
    from multigroup.data import labelled_file, load_table
    from multigroup.hub_code import relations_multigroup as relations_code
    from multigroup.hub_code.relations_multigroup import normalize_relations
    from multigroup.inference import batched_logits
    from multigroup.metrics import compute_metrics
    from multigroup.relations import contradictions, infer_relations
    from multigroup.thresholds import choose_thresholds

    quiet_logging(datasets=True)
    torch.set_num_threads(THREADS)
    runs, table = [], load_table(Path(args.data_dir) / "train.jsonl")
    for folder in args.model:
        model = AutoModelForMultiGroupClassification.from_pretrained(folder).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        config = copy.deepcopy(model.config)
        config.relations = normalize_relations(infer_relations(table, config.groups), config.groups) or None
        # temperatures and thresholds as `multigroup train` now fits them on validation (the default rules)
        texts, labels, _ = labelled_file(Path(args.data_dir) / "validation.jsonl", tokenizer, config)
        logits = batched_logits(model, tokenizer, texts, 32)
        fit_temperatures(config, logits, labels)
        choose_thresholds(config, logits, labels)
        texts, labels, missed = labelled_file(Path(args.data_dir) / f"{args.split}.jsonl", tokenizer, config)
        logits = batched_logits(model, tokenizer, texts, 32)
        alone = config.group_predictions(logits, relations=False)
        arms = {"alone": alone, "drop": dropped(config, alone), "joint": config.group_predictions(logits)}
        default = relations_code.REQUIRED_SLACK
        for slack in args.slacks:
            relations_code.REQUIRED_SLACK = slack
            arms[f"slack {slack:g}"] = config.group_predictions(logits)
        relations_code.REQUIRED_SLACK = default
        run = {"relations": config.relations}
        for name, decided in arms.items():
            bad = contradictions(config, decided)
            run[name] = {
                "contradictory_rows": int(bad.sum()),
                "rows": len(bad),
                **scores(config, decided, labels, missed),
            }
        metrics = compute_metrics(config, logits, labels, missed=missed)  # the library's own scores: the same
        assert all(
            abs(metrics[key] - value) < 1e-9 for key, value in scores(config, arms["joint"], labels, missed).items()
        )
        runs.append(run)
    names = list(runs[0])[1:]  # alone, drop, joint, then each slack
    groups = [g["name"] for g in config.groups if g["type"] != "regression"]
    keys = [f"{g}_f1_{kind}" for g in groups for kind in ("micro", "macro")]
    summary = {
        name: {key: statistics.mean(run[name][key] for run in runs) for key in ["contradictory_rows", *keys]}
        for name in names
    }
    results = {"models": args.model, "data": args.data_dir, "multigroup": multigroup.__version__,
               "machine": machine(), "runs": runs, "summary": summary}  # fmt: skip
    lines = [f"{args.split.capitalize()} split of `{Path(args.data_dir).name}` ({runs[0]['alone']['rows']} sentences), {len(runs)} "
             "model(s): mean (each model's value). Relations inferred from train.jsonl: "
             + "; ".join(str(r) for r in runs[0]["relations"] or []), "",
             "| arm | contradictory sentences | " + " | ".join(f"{g} micro / macro F1" for g in groups) + " |",
             "|---|---|" + "---|" * len(groups)]  # fmt: skip
    for name in names:
        counts = ", ".join(str(run[name]["contradictory_rows"]) for run in runs)
        cells = [f"{summary[name]['contradictory_rows']:.1f} ({counts})"]
        for g in groups:
            cells.append(" / ".join(f"{summary[name][f'{g}_f1_{k}']:.4f} (" + ", ".join(f"{run[name][f'{g}_f1_{k}']:.4f}" for run in runs) + ")" for k in ("micro", "macro")))  # fmt: skip
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    write_results(output, results, "\n".join(lines))


if __name__ == "__main__":
    main()
