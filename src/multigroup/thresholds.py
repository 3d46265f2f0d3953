"""The one rule that picks multilabel thresholds from validation logits; the config stores them, `decode` applies them.

Rules (`RULES`):
- `"shrunk"` (the default): one threshold per group for its micro F1, then each label's own best threshold pulled
  toward it by how much evidence the label has: `(n * own + strength * group) / (n + strength)` for a label with
  `n` positive examples in the validation data. A label seen 3 times keeps nearly the group's value; a label seen
  200 times gets nearly its own. Per-label thresholds tuned on a few positives overfit them (on SemEval-2016
  laptops they lost up to 0.05 test micro-F1 to a single per-group threshold); one threshold per group ignores
  labels that really differ; this keeps the best of both (`scripts/bench_quality.py` scores every rule).
- `"per_label"`: each label's threshold for its own F1 (the best validation macro F1, the most optimistic).
- `"per_group"`: one threshold per group for its micro F1.
- `"fixed"`: 0.5 everywhere (no tuning).

Examples:

```python
>>> import numpy as np
>>> from multigroup import MultiGroupConfig
>>> from multigroup.thresholds import choose_thresholds
>>> config = MultiGroupConfig(groups=[{"name": "topics", "type": "multilabel", "labels": ["a", "b"]}])
>>> logits = np.array([[2.0, -3.0], [0.2, -1.0], [-2.0, -0.5], [-1.0, 1.0]])
>>> labels = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=np.float32)
>>> for rule in ("per_group", "per_label", "shrunk"):  # 2 positives per label: shrunk stays near the group's
...     print(rule, choose_thresholds(config, logits, labels, rule=rule)["topics"])
per_group [0.325, 0.325]
per_label [0.4, 0.325]
shrunk [0.3318, 0.325]

```
"""

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # numpy alone at import: the CLI reads RULES to build its --help
    from .hub_code.configuration_multigroup import MultiGroupConfig

RULES = ("shrunk", "per_label", "per_group", "fixed")
DEFAULT_RULE = "shrunk"
GRID = np.round(np.arange(0.05, 0.951, 0.025), 3)
# Positives at which a label's own threshold and its group's count alike; chosen on validation halves of both
# SemEval-2016 sets, never their test files (scripts/threshold_strength.py; 10 to 40 score within 0.001).
STRENGTH = 20.0


def _best(scores: list[float], grid: np.ndarray) -> float:
    """The middle of the grid points that reach the best score: robust where a few examples leave a wide plateau."""
    scores = np.asarray(scores)
    best = np.flatnonzero(scores >= scores.max() - 1e-12)
    return float(grid[best[len(best) // 2]])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def choose_thresholds(
    config: "MultiGroupConfig",
    logits: np.ndarray,
    labels: np.ndarray,
    rule: str = DEFAULT_RULE,
    grid: np.ndarray | None = None,
    strength: float = STRENGTH,
    apply: bool = True,
) -> dict[str, list[float]]:
    """Per multilabel group, one threshold per label chosen by `rule` on labelled (validation) logits.

    Rows whose group is missing (nan) are left out. A label with no positive example follows its group.
    `apply=True` stores them in the config, where decoding, the pipeline and the metrics read them.
    """
    from .metrics import counts, f1_from_counts  # here, not at the top: metrics imports torch

    if rule not in RULES:
        raise ValueError(f"Unknown threshold rule {rule!r}; choose one of {list(RULES)} (default {DEFAULT_RULE!r}).")
    grid = GRID if grid is None else np.asarray(grid)
    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels, dtype=np.float32)
    chosen = {}
    for group, columns in zip(config.groups, config.group_slices.values()):
        if group["type"] != "multilabel":
            continue
        present = ~np.isnan(labels[:, columns]).any(axis=1)
        probs, truth = _sigmoid(logits[present, columns]), labels[present, columns] > 0.5
        if rule == "fixed":
            chosen[group["name"]] = [0.5] * truth.shape[1]
            if apply:  # stored like every rule's: the config's own default (0.3) differs
                group["threshold"] = chosen[group["name"]]
            continue
        shared = _best([f1_from_counts(*counts(truth, probs >= t))[0] for t in grid], grid)
        positives = truth.sum(0)
        thresholds = []
        for j in range(truth.shape[1]):
            if rule == "per_group" or not positives[j]:
                thresholds.append(shared)
                continue
            own = _best(
                [f1_from_counts(*counts(truth[:, j : j + 1], probs[:, j : j + 1] >= t))[0] for t in grid], grid
            )
            if rule == "shrunk":
                own = (positives[j] * own + strength * shared) / (positives[j] + strength)
            thresholds.append(round(float(own), 4))
        # Searched on the raw scores, stored on the scale decode compares them with: a group's temperature
        # (`multigroup.calibration`) then changes no decision, whatever the grid.
        chosen[group["name"]] = calibrated_thresholds(thresholds, group.get("temperature", 1.0))
        thresholds = chosen[group["name"]]
        if apply:
            group["threshold"] = thresholds
    return chosen


def calibrated_thresholds(thresholds: list[float], temperature: float, inverse: bool = False) -> list[float]:
    """Thresholds on raw sigmoid scores as thresholds on the scores of `logits / temperature` (the same cut on the
    logit: `sigmoid(logit(t) / T)`), or back with `inverse=True`."""
    if temperature == 1.0:
        return list(thresholds)
    scale = temperature if inverse else 1.0 / temperature
    edge = 1e-12  # an extreme temperature would take a cut to 0 or 1, which no threshold may be
    return [min(max(float(_sigmoid(np.log(t / (1 - t)) * scale)), edge), 1 - edge) for t in thresholds]


def edge_notes(
    thresholds: dict[str, list[float]], config: "MultiGroupConfig", grid: np.ndarray | None = None
) -> list[str]:
    """A sentence for each threshold at the edge of the search range, saying why it may be there."""
    grid = GRID if grid is None else np.asarray(grid)
    notes = []
    for name, values in thresholds.items():
        labels = config.group(name)["labels"]
        values = calibrated_thresholds(values, config.group(name).get("temperature", 1.0), inverse=True)
        for label, value in zip(labels, values):
            if value <= grid[0] + 1e-4:  # (back from the calibrated scale: rounded)
                notes.append(
                    f"{name}/{label}: threshold {value} is the lowest tried: the model's scores for it stay low on "
                    "the validation data (a rare or under-trained label); more epochs or data would help."
                )
            elif value >= grid[-1] - 1e-4:
                notes.append(
                    f"{name}/{label}: threshold {value} is the highest tried: the model over-predicts it on the "
                    "validation data; check that label's annotations."
                )
    return notes
