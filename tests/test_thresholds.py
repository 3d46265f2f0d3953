"""The threshold rules on constructed validation sets, checked against brute force with scikit-learn."""

import numpy as np
import pytest
from sklearn.metrics import f1_score

from multigroup.thresholds import GRID, RULES, STRENGTH, choose_thresholds, edge_notes

from conftest import MIXED_GROUPS, tiny_config

N = 400


def validation_set(positives: list[int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """MIXED_GROUPS' layout (3 + 3 + 1 columns); `topics` label j has `positives[j]` positive rows."""
    rng = np.random.default_rng(seed)
    truth = np.zeros((N, 3), dtype=bool)
    for j, count in enumerate(positives):
        truth[rng.choice(N, count, replace=False), j] = True
    logits = np.zeros((N, 7), dtype=np.float32)
    # Label 0's positives score low (its best threshold is low); the others are ordinary.
    centre = np.array([-1.5, 0.5, 0.5])
    logits[:, 3:6] = np.where(truth, rng.normal(centre, 1, truth.shape), rng.normal(-3, 1, truth.shape))
    labels = np.full((N, 7), np.nan, dtype=np.float32)
    labels[:, 3:6] = truth
    return logits, labels


def best_threshold(truth, probs, grid=GRID):
    scores = [f1_score(truth, probs >= t, zero_division=0) for t in grid]
    return max(scores), [t for t, s in zip(grid, scores) if s >= max(scores) - 1e-12]


def test_per_group_rule_maximises_the_groups_micro_f1():
    logits, labels = validation_set([150, 60, 80])
    config = tiny_config(MIXED_GROUPS)
    (threshold, *others) = choose_thresholds(config, logits, labels, rule="per_group")["topics"]
    assert others == [threshold, threshold] and config.groups[1]["threshold"] == [threshold] * 3
    probs, truth = 1 / (1 + np.exp(-logits[:, 3:6])), labels[:, 3:6] > 0.5
    best, ties = best_threshold(truth.ravel(), probs.ravel())  # a group's micro F1 is the F1 of its pooled columns
    assert threshold in ties and f1_score(truth.ravel(), probs.ravel() >= threshold) == pytest.approx(best)


def test_per_label_rule_gives_each_label_its_own_best():
    logits, labels = validation_set([150, 60, 80])
    chosen = choose_thresholds(tiny_config(MIXED_GROUPS), logits, labels, rule="per_label")["topics"]
    probs, truth = 1 / (1 + np.exp(-logits[:, 3:6])), labels[:, 3:6] > 0.5
    for j, threshold in enumerate(chosen):
        assert threshold in best_threshold(truth[:, j], probs[:, j])[1]


def test_shrunk_rule_keeps_the_group_threshold_for_a_rare_label_and_its_own_for_a_frequent_one():
    logits, labels = validation_set([200, 3, 80])
    config = tiny_config(MIXED_GROUPS)
    group = choose_thresholds(config, logits, labels, rule="per_group", apply=False)["topics"][0]
    own = choose_thresholds(config, logits, labels, rule="per_label", apply=False)["topics"]
    shrunk = choose_thresholds(config, logits, labels, rule="shrunk")["topics"]
    for j, n in enumerate([200, 3, 80]):
        assert shrunk[j] == pytest.approx((n * own[j] + STRENGTH * group) / (n + STRENGTH), abs=1e-4)
    assert abs(shrunk[1] - group) <= 0.15 * abs(own[1] - group) + 1e-9  # 3 positives: nearly the group's
    assert abs(shrunk[0] - own[0]) <= 0.1 * abs(own[0] - group) + 1e-9  # 200 positives: nearly its own
    assert config.groups[1]["threshold"] == shrunk


def test_a_label_without_positives_follows_its_group_and_fixed_is_one_half():
    logits, labels = validation_set([100, 0, 50])
    config = tiny_config(MIXED_GROUPS)
    group = choose_thresholds(config, logits, labels, rule="per_group", apply=False)["topics"][0]
    for rule in ("shrunk", "per_label"):
        assert choose_thresholds(config, logits, labels, rule=rule, apply=False)["topics"][1] == group
    assert choose_thresholds(config, logits, labels, rule="fixed")["topics"] == [0.5, 0.5, 0.5]
    assert config.groups[1]["threshold"] == [0.5, 0.5, 0.5]  # stored like every rule's


def test_unknown_rule_and_edge_notes():
    config = tiny_config(MIXED_GROUPS)
    with pytest.raises(ValueError, match="Unknown threshold rule 'best'; choose one of"):
        choose_thresholds(config, *validation_set([10, 10, 10]), rule="best")
    notes = edge_notes({"topics": [GRID[0], 0.5, GRID[-1]]}, config)
    assert len(notes) == 2 and notes[0].startswith("topics/food: threshold 0.05 is the lowest tried")
    assert "topics/price" in notes[1] and "highest tried" in notes[1]
    assert set(RULES) == {"shrunk", "per_label", "per_group", "fixed"}
