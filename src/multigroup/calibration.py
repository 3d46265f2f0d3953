"""Scores that mean what they say: one temperature per classification group, fitted on labelled (validation)
logits; the config stores it (the group's `temperature`), the one decode divides the group's logits by it.

A fine-tuned encoder is over-confident (on SemEval-2016 laptops its `polarity` scored 0.761 on average on test for
an accuracy of 0.689). Temperature scaling (Guo et al., 2017) fits one number per group, the `T` that minimises the
group's negative log-likelihood of `softmax(z / T)` (multiclass) or `sigmoid(z / T)` (multilabel) on validation
data. It changes no decision: the argmax of `z / T` is the argmax of `z`, and a multilabel group's thresholds are
searched on the raw scores and stored on the calibrated scale (`sigmoid(logit(t) / T)`, the same cut on the
logit), so F1 is the same with and without it; only the scores move.

Examples:

```python
>>> import numpy as np
>>> from multigroup import MultiGroupConfig
>>> from multigroup.calibration import fit_temperatures
>>> config = MultiGroupConfig(groups=[{"name": "stars", "type": "multiclass", "labels": ["bad", "good"]}])
>>> logits = np.array([[4.0, -4.0], [-4.0, 4.0], [4.0, -4.0], [-4.0, 4.0]])
>>> labels = np.array([[1, 0], [0, 1], [0, 1], [0, 1]], dtype=np.float32)  # 3 of 4 right at a score of 0.9997
>>> fit_temperatures(config, logits, labels)  # T = 8 / log 3: the argmax now scores 0.75, right 3 times in 4
{'stars': 7.2819}
>>> round(config.decode(logits[:1])[0]["stars"]["score"], 3)
0.75

```
"""

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .hub_code.configuration_multigroup import MultiGroupConfig

# The search range of the inverse temperature `1 / T`; the negative log-likelihood is convex in it.
INVERSE_RANGE = (1e-3, 20.0)


def group_nll(kind: str, logits: np.ndarray, truth: np.ndarray, inverse: float) -> float:
    """Mean negative log-likelihood of the scores of `logits * inverse`: cross-entropy of a multiclass group
    (`truth` one-hot), mean binary cross-entropy over a multilabel group's labels."""
    z = logits * inverse
    if kind == "multiclass":
        top = z.max(1, keepdims=True)
        log_norm = top[:, 0] + np.log(np.exp(z - top).sum(1))
        return float((log_norm - (z * truth).sum(1)).mean())
    return float((np.logaddexp(0.0, z) - z * truth).mean())  # -log sigmoid(z) for a positive, -log(1 - ...) else


def _minimise(nll, low: float, high: float, steps: int = 80) -> float:
    """Golden-section search of a convex function on [low, high]."""
    ratio = (5**0.5 - 1) / 2
    a, b = low, high
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = nll(c), nll(d)
    for _ in range(steps):
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = nll(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = nll(d)
    return (a + b) / 2


def fit_temperatures(
    config: "MultiGroupConfig", logits: np.ndarray, labels: np.ndarray, apply: bool = True
) -> dict[str, float]:
    """Per classification group, the temperature that minimises its negative log-likelihood on labelled logits.

    Rows whose group is missing (nan) are left out; a group no row carries keeps its temperature. `apply=True`
    stores them in the config (`group["temperature"]`), where decoding, the thresholds and the metrics read them.
    Returns `{group: temperature}`, rounded to 4 digits.
    """
    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    fitted = {}
    for group, columns in zip(config.groups, config.group_slices.values()):
        if group["type"] == "regression":
            continue
        present = ~np.isnan(labels[:, columns]).any(axis=1)
        if not present.any():
            continue
        z, truth = logits[present, columns], labels[present, columns]
        if group["type"] == "multiclass":
            truth = np.eye(truth.shape[1])[truth.argmax(1)]
        inverse = _minimise(lambda b: group_nll(group["type"], z, truth, b), *INVERSE_RANGE)
        fitted[group["name"]] = round(1.0 / inverse, 4)
        if apply:
            set_temperature(group, fitted[group["name"]])
    return fitted


def set_temperature(group: dict, temperature: float | None) -> None:
    """Give `group` its `temperature` (None: none, the raw scores) and move a multilabel group's thresholds to the
    new scale (the same cut on the logit): its decisions stay what they were."""
    from .thresholds import calibrated_thresholds

    if group["type"] == "multilabel":
        threshold = group["threshold"]
        values = threshold if isinstance(threshold, list) else [threshold]
        raw = calibrated_thresholds(values, group.get("temperature", 1.0), inverse=True)
        moved = calibrated_thresholds(raw, temperature or 1.0)
        group["threshold"] = moved if isinstance(threshold, list) else moved[0]
    if temperature is None:
        group.pop("temperature", None)
    else:
        group["temperature"] = temperature


def reliability_bins(scores: np.ndarray, truth: np.ndarray, bins: int = 15) -> list[tuple[float, float, int]]:
    """A multiclass group's top scores in `bins` equal-width bins: per non-empty bin, the mean top score, the share
    of its rows whose top label is right, and its row count (a reliability diagram's points)."""
    scores, truth = np.asarray(scores, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    confidence, right = scores.max(1), truth[np.arange(len(truth)), scores.argmax(1)]
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    return [
        (float(confidence[which == b].mean()), float(right[which == b].mean()), int((which == b).sum()))
        for b in range(bins)
        if (which == b).any()
    ]


def calibration_errors(kind: str, scores: np.ndarray, truth: np.ndarray, bins: int = 15) -> dict[str, float]:
    """`ece`, the expected calibration error of a multiclass group's top score (`bins` equal-width bins: the mean
    gap between confidence and accuracy, weighted by the bin's rows), and `brier`, the mean squared error of the
    scores against the 0/1 truth (summed over a multiclass group's labels, averaged over a multilabel group's)."""
    scores, truth = np.asarray(scores, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if not len(scores):
        return {}
    squared = (scores - truth) ** 2
    if kind != "multiclass":
        return {"brier": float(squared.mean())}
    points = reliability_bins(scores, truth, bins)
    gap = sum(abs(confidence - accuracy) * count for confidence, accuracy, count in points)
    return {"ece": float(gap / len(scores)), "brier": float(squared.sum(1).mean())}
