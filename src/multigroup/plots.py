"""PNG figures for `multigroup evaluate`: per-label F1 bars for each group, a confusion matrix and a reliability
diagram per multiclass group."""

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _save(plt, figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def f1_bars(group: str, rows: list[dict], path: Path) -> Path:
    """Horizontal bars of each label's F1, labelled with its support; rare labels in grey."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.2))
    colors = ["#9e9e9e" if row["rare"] else "#3b75af" for row in rows]
    axis.barh([row["label"] for row in rows], [row["f1"] for row in rows], color=colors)
    for i, row in enumerate(rows):
        axis.text(min(row["f1"] + 0.01, 0.9), i, f"n={row['support']}", va="center", fontsize=8)
    axis.set_xlim(0, 1)
    axis.invert_yaxis()
    axis.set_xlabel("F1 (grey: rare label)")
    axis.set_title(f"{group}: F1 per label")
    return _save(plt, figure, path)


def confusion_matrix(group: str, labels: list[str], y_true: np.ndarray, y_pred: np.ndarray, path: Path) -> Path:
    """Counts of (true class, predicted class), rows normalised to show recall per class."""
    plt = _pyplot()
    k = len(labels)
    matrix = np.zeros((k, k), dtype=int)
    np.add.at(matrix, (y_true, y_pred), 1)
    share = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    figure, axis = plt.subplots(figsize=(1.0 * k + 2, 1.0 * k + 1.5))
    axis.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            axis.text(j, i, matrix[i, j], ha="center", va="center", color="white" if share[i, j] > 0.5 else "black")
    axis.set_xticks(range(k), labels, rotation=45, ha="right")
    axis.set_yticks(range(k), labels)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(f"{group}: confusion matrix")
    return _save(plt, figure, path)


def reliability(group: str, bins: list[tuple[float, float, int]], ece: float, path: Path) -> Path:
    """Accuracy against mean top score per bin (`multigroup.calibration.reliability_bins`), the diagonal being a
    calibrated model; each point sized by its rows."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(4.5, 4.5))
    axis.plot([0, 1], [0, 1], color="#9e9e9e", linestyle="--", linewidth=1)
    confidence, accuracy, counts = zip(*bins) if bins else ((), (), ())
    axis.plot(confidence, accuracy, color="#3b75af", marker="o", linewidth=1)
    for x, y, n in bins:
        axis.text(x, y + 0.03, f"{n}", ha="center", fontsize=7)
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.05)
    axis.set_xlabel("mean top score (n = rows in the bin)")
    axis.set_ylabel("share right")
    axis.set_title(f"{group}: reliability (ECE {ece:.3f})")
    return _save(plt, figure, path)
