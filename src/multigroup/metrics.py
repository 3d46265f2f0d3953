"""Per-group metrics over arrays: pure functions, `build_compute_metrics` for Trainer, and the per-label report.

Definitions match scikit-learn's `f1_score(..., labels=every label of the group, zero_division=0)`: macro F1
averages over every label of the group, a label never true nor predicted scoring 0. Rows whose group is missing
(`nan` in its columns) are left out of that group's metrics.

Examples:

```python
>>> import numpy as np
>>> from multigroup.metrics import f1_scores
>>> f1_scores(np.array([[1, 0], [1, 1]]), np.array([[1, 0], [0, 1]]))
{'f1_micro': 0.8, 'f1_macro': 0.8333333333333333}

```
"""

import math
from collections.abc import Callable

import numpy as np
import torch

from .hub_code.configuration_multigroup import MultiGroupConfig
from .hub_code.modeling_multigroup import multi_group_loss


def counts(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-label true positives, false positives and false negatives of two `(n, k)` 0/1 indicator arrays."""
    y_true, y_pred = np.asarray(y_true, dtype=bool), np.asarray(y_pred, dtype=bool)
    return (y_true & y_pred).sum(0), (~y_true & y_pred).sum(0), (y_true & ~y_pred).sum(0)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator, denominator = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def f1_from_counts(tp, fp, fn) -> tuple[float, float, np.ndarray]:
    """Micro F1, macro F1 and the per-label F1 from per-label counts."""
    per_label = _ratio(2 * np.asarray(tp), 2 * np.asarray(tp) + fp + fn)
    micro = float(_ratio(2 * np.sum(tp), 2 * np.sum(tp) + np.sum(fp) + np.sum(fn)))
    return micro, float(per_label.mean()) if per_label.size else 0.0, per_label


def _micro_f1(tp, fp, fn, missed: int = 0) -> float:
    return float(_ratio(2 * np.sum(tp), 2 * np.sum(tp) + np.sum(fp) + np.sum(fn) + missed))


def f1_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Micro and macro F1 of `(n, k)` indicator arrays (a multiclass group as one-hot rows)."""
    micro, macro, _ = f1_from_counts(*counts(y_true, y_pred))
    return {"f1_micro": micro, "f1_macro": macro}


def subset_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of rows whose whole label set is right."""
    return float(np.mean(np.all(np.asarray(y_true, bool) == np.asarray(y_pred, bool), axis=1))) if len(y_true) else 0.0


def regression_errors(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    error = np.asarray(y_pred, dtype=float) - np.asarray(y_true, dtype=float)
    return {"mae": float(np.abs(error).mean()), "rmse": float(np.sqrt((error**2).mean()))} if error.size else {}


def _groups_arrays(config: MultiGroupConfig, logits, labels, threshold=None):
    """Per group, over the rows that carry it: (group, true indicators or values, predicted indicators or values,
    the scores decode gives or None)."""
    logits, labels = np.asarray(logits, dtype=np.float32), np.asarray(labels, dtype=np.float32)
    predictions = config.group_predictions(torch.from_numpy(logits), threshold)
    for group, columns in zip(config.groups, config.group_slices.values()):
        present = ~np.isnan(labels[:, columns]).any(axis=1)
        pred = predictions[group["name"]]
        if group["type"] == "regression":
            yield group, labels[present, columns.start], pred["values"].numpy()[present], None
            continue
        if group["type"] == "multiclass":
            y_pred = np.eye(len(group["labels"]), dtype=bool)[pred["index"].numpy()]
            y_true = np.eye(len(group["labels"]), dtype=bool)[labels[:, columns].argmax(1)]
        else:
            y_pred, y_true = pred["selected"].numpy(), labels[:, columns] > 0.5
        yield group, y_true[present], y_pred[present], pred["scores"].numpy()[present]


def unseen_label_counts(config: MultiGroupConfig, rows) -> dict[str, int]:
    """Per multilabel group, how many gold labels in `rows` (dicts, or a Dataset) the model has no column for.

    Labels seen only in evaluation data (7 `aspects` of the SemEval-2016 laptops test set) cannot be predicted;
    pass these counts as `compute_metrics(..., missed=...)` to score them as misses, as the official scorer does,
    instead of dropping them (which inflates recall).
    """
    multilabel = {group["name"]: set(group["labels"]) for group in config.groups if group["type"] == "multilabel"}
    missed = dict.fromkeys(multilabel, 0)
    for row in rows:
        for name, known in multilabel.items():
            missed[name] += sum(label not in known for label in row.get(name) or [])
    return missed


def compute_metrics(
    config: MultiGroupConfig, logits, labels, threshold=None, missed: dict[str, int] | None = None
) -> dict[str, float]:
    """Every metric for every group, plus `f1_micro` / `f1_macro` over all classification columns and
    `mean_f1_macro` (the mean of the groups' macro F1), and `loss_{group}` over the whole set.

    Classification groups also get `{group}_brier` (the Brier score of their scores) and multiclass groups
    `{group}_ece` (the expected calibration error of the top score, 15 bins): how far to trust a score
    (`multigroup.calibration`).

    `missed`: `{group: count}` of gold labels the model has no column for (`unseen_label_counts`); they count as
    false negatives in the micro F1s. Macro F1 stays over the model's own labels."""
    from .calibration import calibration_errors

    metrics, tp_all, fp_all, fn_all, group_macros, missed_all = {}, [], [], [], [], 0
    for group, y_true, y_pred, scores in _groups_arrays(config, logits, labels, threshold):
        name = group["name"]
        if group["type"] == "regression":
            metrics.update({f"{name}_{key}": value for key, value in regression_errors(y_true, y_pred).items()})
            continue
        tp, fp, fn = counts(y_true, y_pred)
        extra = (missed or {}).get(name, 0)  # false negatives in a column the model does not have
        micro, macro = _micro_f1(tp, fp, fn, extra), f1_from_counts(tp, fp, fn)[1]
        missed_all += extra
        metrics[f"{name}_f1_micro"], metrics[f"{name}_f1_macro"] = micro, macro
        if group["type"] == "multiclass":
            metrics[f"{name}_accuracy"] = float(np.mean(np.all(y_true == y_pred, axis=1))) if len(y_true) else 0.0
        else:
            metrics[f"{name}_subset_accuracy"] = subset_accuracy(y_true, y_pred)
        errors = calibration_errors(group["type"], scores, y_true)
        metrics.update({f"{name}_{key}": value for key, value in errors.items()})
        tp_all.append(tp), fp_all.append(fp), fn_all.append(fn), group_macros.append(macro)
    if tp_all:
        tp, fp, fn = np.concatenate(tp_all), np.concatenate(fp_all), np.concatenate(fn_all)
        micro, macro = _micro_f1(tp, fp, fn, missed_all), f1_from_counts(tp, fp, fn)[1]
        metrics.update(f1_micro=micro, f1_macro=macro, mean_f1_macro=float(np.mean(group_macros)))
    _, group_losses = multi_group_loss(torch.as_tensor(logits).float(), torch.as_tensor(labels).float(), config)
    metrics.update({f"loss_{name}": float(value) for name, value in group_losses.items()})
    return metrics


def build_compute_metrics(config: MultiGroupConfig, threshold=None) -> Callable:
    """The function to pass as `Trainer(compute_metrics=...)`; Trainer prefixes the keys with `eval_`."""

    def trainer_compute_metrics(eval_prediction) -> dict[str, float]:
        logits = eval_prediction.predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        return compute_metrics(config, logits, eval_prediction.label_ids, threshold)

    return trainer_compute_metrics


def classification_report(
    config: MultiGroupConfig, logits, labels, threshold=None, rare_support: int | None = None
) -> dict[str, list[dict]]:
    """Per group, per label: precision, recall, F1, support, and whether the label is rare.

    A label is flagged `rare` when its support is below `rare_support` (default: a tenth of the group's mean
    support, at least 5), the usual reason a label scores poorly.
    """
    report = {}
    for group, y_true, y_pred, _ in _groups_arrays(config, logits, labels, threshold):
        if group["type"] == "regression":
            continue
        tp, fp, fn = counts(y_true, y_pred)
        support = y_true.sum(0)
        cutoff = rare_support if rare_support is not None else max(5, support.mean() / 10)
        _, _, f1 = f1_from_counts(tp, fp, fn)
        report[group["name"]] = [
            {
                "label": label,
                "precision": float(_ratio(tp[j], tp[j] + fp[j])),
                "recall": float(_ratio(tp[j], tp[j] + fn[j])),
                "f1": float(f1[j]),
                "support": int(support[j]),
                "rare": bool(support[j] < cutoff),
            }
            for j, label in enumerate(group["labels"])
        ]
    return report


def format_metrics_table(metrics: dict[str, float], config: MultiGroupConfig, prefix: str = "") -> str:
    """One line per group: its F1 micro / macro, accuracy or subset accuracy, calibration error and Brier score,
    MAE / RMSE, and loss."""
    columns = ["f1_micro", "f1_macro", "accuracy", "subset_accuracy", "ece", "brier", "mae", "rmse"]
    header = f"{'group':<20}" + "".join(f"{column:>16}" for column in [*columns, "loss"])
    lines = [header, "-" * len(header)]
    for name in config.group_names:
        values = [metrics.get(f"{prefix}{name}_{column}") for column in columns] + [
            metrics.get(f"{prefix}loss_{name}")
        ]
        lines.append(f"{name:<20}" + "".join(f"{_cell(value):>16}" for value in values))
    if f"{prefix}f1_micro" in metrics:
        overall = [metrics[f"{prefix}f1_micro"], metrics[f"{prefix}f1_macro"]]
        lines.append(f"{'all (columns)':<20}" + "".join(f"{_cell(value):>16}" for value in overall))
        lines.append(f"mean of group macro F1: {_cell(metrics[f'{prefix}mean_f1_macro'])}")
    return "\n".join(lines)


def format_report(report: dict[str, list[dict]]) -> str:
    """The per-label report as text, label names in full; rare labels are marked with `*`."""
    lines = []
    for name, rows in report.items():
        width = max([len("label"), *(len(row["label"]) for row in rows)]) + 2
        lines.append(f"{name}\n{'label':<{width}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}")
        for row in rows:
            flag = " *" if row["rare"] else ""
            lines.append(
                f"{row['label']:<{width}}{row['precision']:>10.3f}{row['recall']:>10.3f}{row['f1']:>10.3f}"
                f"{row['support']:>9}{flag}"
            )
        rare = [row["label"] for row in rows if row["rare"]]
        if rare:
            lines.append(f"* rare (low support), expect a poor score: {', '.join(rare)}")
        lines.append("")
    return "\n".join(lines)


def _cell(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"
