"""Calibration: temperatures fitted on labelled logits equal a brute-force minimum of hand-written torch losses,
the one decode applies them (no multiclass decision moves), the thresholds follow them, the metrics report ECE and
Brier against hand computations and scikit-learn, and configs without temperatures decode as before."""

import numpy as np
import pytest
import torch
from sklearn.metrics import brier_score_loss

from multigroup import MultiGroupConfig
from multigroup.calibration import calibration_errors, fit_temperatures, reliability_bins
from multigroup.metrics import compute_metrics
from multigroup.thresholds import choose_thresholds

GROUPS = [
    {"name": "stars", "type": "multiclass", "labels": ["1", "2", "3", "4"]},
    {"name": "topics", "type": "multilabel", "labels": ["a", "b", "c"]},
    {"name": "price", "type": "regression"},
]


def _data(seed: int = 0, rows: int = 400, scale: float = 3.0):
    """Logits `scale` times too sharp: labels drawn from the scores of `logits / scale`, a quarter of the rows
    without `topics` (nan)."""
    rng = np.random.default_rng(seed)
    true = rng.normal(size=(rows, 7))
    probs = np.exp(true[:, :4]) / np.exp(true[:, :4]).sum(1, keepdims=True)
    stars = np.eye(4)[[rng.choice(4, p=p) for p in probs]]
    topics = (rng.random((rows, 3)) < 1 / (1 + np.exp(-true[:, 4:]))).astype(float)
    topics[rows * 3 // 4 :] = np.nan
    labels = np.concatenate([stars, topics, rng.normal(size=(rows, 1))], 1)
    return np.concatenate([true * scale, rng.normal(size=(rows, 1))], 1), labels


def _brute_force(kind: str, logits: np.ndarray, truth: np.ndarray) -> float:
    """The temperature with the lowest torch loss on a fine grid, by hand."""
    z, y = torch.tensor(logits), torch.tensor(truth)
    grid = torch.linspace(0.2, 10, 9801, dtype=torch.float64)
    if kind == "multiclass":
        losses = [torch.nn.functional.cross_entropy(z / t, y.argmax(1)) for t in grid]
    else:
        losses = [torch.nn.functional.binary_cross_entropy_with_logits(z / t, y) for t in grid]
    return float(grid[int(torch.stack(losses).argmin())])


def test_the_fitted_temperatures_are_the_minimum_of_the_torch_losses():
    config = MultiGroupConfig(groups=GROUPS)
    logits, labels = _data()
    fitted = fit_temperatures(config, logits, labels)
    assert set(fitted) == {"stars", "topics"}
    assert fitted["stars"] == pytest.approx(_brute_force("multiclass", logits[:, :4], labels[:, :4]), abs=2e-3)
    present = ~np.isnan(labels[:, 4]).astype(bool)
    want = _brute_force("multilabel", logits[present, 4:7], labels[present, 4:7])
    assert fitted["topics"] == pytest.approx(want, abs=2e-3)
    assert 2 < fitted["stars"] < 4.5 and 2 < fitted["topics"] < 4.5  # near the 3 the data was made with
    assert [group.get("temperature") for group in config.groups] == [fitted["stars"], fitted["topics"], None]
    untouched = MultiGroupConfig(groups=GROUPS)
    assert fit_temperatures(untouched, logits, labels, apply=False) == fitted
    assert all("temperature" not in group for group in untouched.groups)


def test_decode_divides_each_group_by_its_temperature_and_keeps_every_multiclass_decision():
    logits, _ = _data(seed=1, rows=50)
    plain = MultiGroupConfig(groups=GROUPS)
    warm = MultiGroupConfig(groups=[dict(GROUPS[0], temperature=2.5), dict(GROUPS[1], temperature=0.5), GROUPS[2]])
    got = warm.group_predictions(logits)
    z = torch.tensor(logits, dtype=torch.float32)
    assert torch.allclose(got["stars"]["scores"], (z[:, :4] / 2.5).softmax(-1), atol=1e-6)
    assert torch.allclose(got["topics"]["scores"], (z[:, 4:7] / 0.5).sigmoid(), atol=1e-6)
    assert torch.equal(got["stars"]["index"], plain.group_predictions(logits)["stars"]["index"])
    assert torch.equal(got["price"]["values"], z[:, 7])
    decoded = warm.decode(logits, top_k=None)
    assert [row["stars"][0]["label"] for row in decoded] == [row["stars"]["label"] for row in plain.decode(logits)]


def test_a_config_without_temperatures_decodes_as_before_and_round_trips_them():
    logits, _ = _data(seed=2, rows=20)
    config = MultiGroupConfig(groups=GROUPS)
    scores = config.group_predictions(logits)["stars"]["scores"]
    assert torch.equal(scores, torch.tensor(logits[:, :4], dtype=torch.float32).softmax(-1))  # bit for bit
    assert all("temperature" not in group for group in config.to_dict()["groups"])
    config.groups[0]["temperature"] = 1.7
    again = MultiGroupConfig.from_dict(config.to_dict())
    assert again.groups[0]["temperature"] == 1.7 and "temperature" not in again.groups[1]


@pytest.mark.parametrize(
    "group, match",
    [
        ({"name": "price", "type": "regression", "temperature": 2.0}, "does not apply to a regression group"),
        ({"name": "stars", "type": "multiclass", "labels": ["a", "b"], "temperature": 0}, "finite number > 0"),
        ({"name": "stars", "type": "multiclass", "labels": ["a", "b"], "temperature": "2"}, "finite number > 0"),
        ({"name": "topics", "type": "multilabel", "labels": ["a"], "temperature": float("inf")}, "finite number"),
    ],
)
def test_a_bad_temperature_is_refused_naming_the_group(group, match):
    with pytest.raises(ValueError, match=rf"Group `{group['name']}`: `temperature` .*{match}"):
        MultiGroupConfig(groups=[group])


def test_thresholds_are_stored_on_the_calibrated_scale_and_decide_as_without_calibration():
    logits, labels = _data(seed=3)
    raw, calibrated = MultiGroupConfig(groups=GROUPS), MultiGroupConfig(groups=GROUPS)
    temperature = fit_temperatures(calibrated, logits, labels)["topics"]
    for rule in ("shrunk", "per_label", "per_group"):
        t_raw = np.array(choose_thresholds(raw, logits, labels, rule=rule)["topics"])
        t_cal = np.array(choose_thresholds(calibrated, logits, labels, rule=rule)["topics"])
        logit = lambda p: np.log(p / (1 - p))  # noqa: E731
        assert np.allclose(logit(t_cal) * temperature, logit(t_raw), atol=1e-4)  # the same cut on the logit
        assert calibrated.group("topics")["threshold"] == list(t_cal) and not np.allclose(t_cal, t_raw)
        selected = [config.group_predictions(logits)["topics"]["selected"] for config in (raw, calibrated)]
        assert torch.equal(selected[0], selected[1]), rule
        raw_metrics, calibrated_metrics = (compute_metrics(c, logits, labels) for c in (raw, calibrated))
        assert calibrated_metrics["topics_f1_micro"] == raw_metrics["topics_f1_micro"]


def test_ece_and_brier_equal_hand_computations_and_scikit_learn():
    rng = np.random.default_rng(4)
    scores = rng.dirichlet(np.ones(3), size=300)
    truth = np.eye(3)[rng.integers(0, 3, size=300)]
    got = calibration_errors("multiclass", scores, truth)
    confidence, right = scores.max(1), truth[np.arange(300), scores.argmax(1)]
    ece = 0.0
    for b in range(15):  # by hand: bins [b/15, (b+1)/15), the last one closed
        inside = (confidence >= b / 15) & ((confidence < (b + 1) / 15) | (b == 14))
        if inside.any():
            ece += inside.mean() * abs(confidence[inside].mean() - right[inside].mean())
    assert got["ece"] == pytest.approx(ece, abs=1e-12)
    points = reliability_bins(scores, truth)  # the diagram's points: the same bins
    assert sum(count for _, _, count in points) == 300 and all(0 <= acc <= 1 for _, acc, _ in points)
    assert [round(c, 9) for c, _, _ in points] == sorted(round(c, 9) for c, _, _ in points)
    assert got["brier"] == pytest.approx(((scores - truth) ** 2).sum(1).mean(), abs=1e-12)
    multilabel = rng.random((300, 4)), (rng.random((300, 4)) < 0.3).astype(float)
    expected = brier_score_loss(multilabel[1].ravel(), multilabel[0].ravel())
    assert calibration_errors("multilabel", *multilabel) == {"brier": pytest.approx(expected, abs=1e-12)}


def test_calibration_lowers_the_metrics_calibration_error_and_keeps_the_f1():
    logits, labels = _data(seed=5, rows=2000)
    config = MultiGroupConfig(groups=GROUPS)
    before = compute_metrics(config, logits, labels)
    fit_temperatures(config, logits, labels)
    after = compute_metrics(config, logits, labels)
    assert before["stars_ece"] > 0.1 and after["stars_ece"] < 0.03
    assert after["stars_brier"] < before["stars_brier"] and after["topics_brier"] < before["topics_brier"]
    assert after["stars_f1_macro"] == before["stars_f1_macro"] and after["stars_accuracy"] == before["stars_accuracy"]
    assert "price_ece" not in after and "price_brier" not in after


def test_a_temperature_moves_no_decision_even_on_untuned_thresholds_and_extreme_values():
    from multigroup.thresholds import calibrated_thresholds

    logits, labels = _data(seed=6)
    fixed, calibrated = MultiGroupConfig(groups=GROUPS), MultiGroupConfig(groups=GROUPS)
    fit_temperatures(calibrated, logits, labels)  # the default 0.3, never tuned: moved to the new scale
    assert calibrated.group("topics")["threshold"] != 0.3
    for name in ("stars", "topics"):
        want = fixed.group_predictions(logits)[name]
        got = calibrated.group_predictions(logits)[name]
        assert torch.equal(want.get("selected", want.get("index")), got.get("selected", got.get("index"))), name
    for value in calibrated_thresholds([0.05, 0.95], 0.05) + calibrated_thresholds([0.05, 0.95], 50.0, inverse=True):
        assert 0 < value < 1  # a threshold, whatever the temperature
