"""Calibration: each group's expected calibration error, Brier score and F1 on the test split, raw scores against
temperatures fitted on the validation split (what `multigroup train` does by default; `--no-calibrate` is the raw
arm), thresholds picked on validation after either (the default rule), over one model per seed. Two references:
the lowest test ECE of any temperature (`oracle_ece`, chosen with the test labels) and the ECE a perfectly
calibrated model would show on a test split of this size (`floor_ece`, sampling noise alone).

    multigroup train ... --seed 0 --output-dir out/laptops-0    # (and --seed 1 ...) at train's defaults
    python scripts/bench_calibration.py --data-dir ../shared/data/semeval16_absa_laptops_en \
        --model out/laptops-0 out/laptops-1

Both arms come from the same logits of each model (the temperatures and thresholds are the only difference), gold
labels the model lacks counted as misses. Writes scripts/results/bench_calibration_DATA.{json,md}.
"""

import argparse
import copy
import statistics
from pathlib import Path

from _harness import RESULTS, THREADS, machine, quiet_logging, write_results

KEYS = ("ece", "brier", "f1_micro", "f1_macro")


def arms(config, validation, test):
    """Per arm, the test metrics of `config` with thresholds (and temperatures, for `calibrated`) fitted on
    `validation` = (logits, labels); `test` = (logits, labels, missed)."""
    from multigroup.calibration import fit_temperatures
    from multigroup.metrics import compute_metrics
    from multigroup.thresholds import choose_thresholds

    out = {}
    for arm in ("raw", "calibrated"):
        fitted = copy.deepcopy(config)
        for group in fitted.groups:
            group.pop("temperature", None)
        if arm == "calibrated":
            fit_temperatures(fitted, *validation)
        choose_thresholds(fitted, *validation)
        out[arm] = compute_metrics(fitted, test[0], test[1], missed=test[2])
        out[arm]["temperatures"] = {
            g["name"]: g.get("temperature", 1.0) for g in fitted.groups if g["type"] != "regression"
        }
    return out


def oracle_ece(config, logits, labels) -> dict[str, float]:
    """Per multiclass group, the lowest test ECE of any temperature (0.5 to 6, steps of 0.01), chosen with the test
    labels: what no temperature fitted elsewhere can beat."""
    import numpy as np
    import torch

    from multigroup.calibration import calibration_errors

    out = {}
    for group, columns in zip(config.groups, config.group_slices.values()):
        if group["type"] == "multiclass":
            z, truth = torch.as_tensor(logits[:, columns]), labels[:, columns]
            errors = [calibration_errors("multiclass", (z / t).softmax(-1).numpy(), truth)["ece"]
                      for t in np.arange(0.5, 6.0, 0.01)]  # fmt: skip
            out[group["name"]] = float(min(errors))
    return out


def floor_ece(config, logits, labels, draws: int = 200) -> dict[str, float]:
    """Per multiclass group, the mean test ECE of a perfectly calibrated model with these (temperature-scaled)
    scores: each draw takes every row's truth at random from its own scores (seeded), so the only gap left is
    sampling noise, what a test split of this size measures even when the scores are exact. Rows without the
    group's label are left out, as the measured ECE leaves them out."""
    import numpy as np
    import torch

    from multigroup.calibration import calibration_errors

    rng, out = np.random.default_rng(0), {}
    for group, columns in zip(config.groups, config.group_slices.values()):
        if group["type"] == "multiclass":
            present = ~np.isnan(labels[:, columns]).any(axis=1)
            z = torch.as_tensor(logits[present, columns]) / group.get("temperature", 1.0)
            scores = z.softmax(-1).double().numpy()
            cumulative = scores.cumsum(1)
            errors = []
            for _ in range(draws):
                drawn = (rng.random((len(scores), 1)) > cumulative).sum(1).clip(max=scores.shape[1] - 1)
                errors.append(calibration_errors("multiclass", scores, np.eye(scores.shape[1])[drawn])["ece"])
            out[group["name"]] = float(np.mean(errors))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", required=True, help="saved multigroup model folders (one per seed)")
    parser.add_argument("--data-dir", required=True, help="folder with validation.jsonl and test.jsonl")
    parser.add_argument(
        "--output", help="results path without suffix (default scripts/results/bench_calibration_DATA)"
    )
    args = parser.parse_args()
    output = args.output or str(RESULTS / f"bench_calibration_{Path(args.data_dir).name}")

    import torch
    from transformers import AutoTokenizer

    import multigroup
    from multigroup import AutoModelForMultiGroupClassification
    from multigroup.data import labelled_file
    from multigroup.inference import batched_logits

    quiet_logging(datasets=True)
    torch.set_num_threads(THREADS)
    runs = []
    for folder in args.model:
        model = AutoModelForMultiGroupClassification.from_pretrained(folder).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        split = {}
        for name in ("validation", "test"):
            texts, labels, missed = labelled_file(Path(args.data_dir) / f"{name}.jsonl", tokenizer, model.config)
            split[name] = (batched_logits(model, tokenizer, texts, 32), labels, missed)
        run = arms(model.config, split["validation"][:2], split["test"])
        run["oracle_ece"] = oracle_ece(model.config, *split["test"][:2])
        calibrated = copy.deepcopy(model.config)
        for group in calibrated.groups:
            group["temperature"] = run["calibrated"]["temperatures"].get(group["name"], 1.0)
        run["floor_ece"] = floor_ece(calibrated, *split["test"][:2])
        runs.append(run)
    groups = [g for g in model.config.groups if g["type"] != "regression"]
    summary = {}
    for group in groups:
        for key in KEYS:
            if group["type"] == "multilabel" and key == "ece":
                continue
            for arm in ("raw", "calibrated"):
                values = [run[arm][f"{group['name']}_{key}"] for run in runs]
                summary[f"{group['name']}_{key}_{arm}"] = {"mean": statistics.mean(values), "values": values}
    results = {"models": args.model, "data": args.data_dir, "multigroup": multigroup.__version__,
               "machine": machine(), "runs": runs, "summary": summary}  # fmt: skip
    lines = [f"Test split of `{Path(args.data_dir).name}`, {len(runs)} model(s) (mean, then each model's value); "
             "thresholds picked on validation in both arms.", "",
             "| group | metric | raw | calibrated |", "|---|---|---|---|"]  # fmt: skip
    for group in groups:
        for key in KEYS:
            if f"{group['name']}_{key}_raw" not in summary:
                continue
            cells = []
            for arm in ("raw", "calibrated"):
                entry = summary[f"{group['name']}_{key}_{arm}"]
                cells.append(f"{entry['mean']:.4f} ({', '.join(f'{v:.4f}' for v in entry['values'])})")
            lines.append(f"| `{group['name']}` | {key} | {cells[0]} | {cells[1]} |")
    temperatures = [", ".join(f"{k} {v:g}" for k, v in run["calibrated"]["temperatures"].items()) for run in runs]
    lines += ["", "Temperatures fitted: " + "; ".join(temperatures)]
    lines += ["Lowest test ECE of any temperature (chosen on test): " + "; ".join(
        ", ".join(f"{k} {v:.4f}" for k, v in run["oracle_ece"].items()) for run in runs)]  # fmt: skip
    lines += ["Test ECE of a perfectly calibrated model with the calibrated scores (sampling noise alone, mean of "
              "200 seeded draws): " + "; ".join(
        ", ".join(f"{k} {v:.4f}" for k, v in run["floor_ece"].items()) for run in runs)]  # fmt: skip
    markdown = "\n".join(lines)
    write_results(output, results, markdown)


if __name__ == "__main__":
    main()
