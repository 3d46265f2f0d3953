import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score
from sklearn.utils.class_weight import compute_class_weight

from helpers import make_trainer
from multigroup.metrics import build_compute_metrics, compute_metrics
from multigroup.modeling_multigroup import multi_group_loss
from multigroup.training import attach_callbacks, fit_class_weights, fit_loss_scales, tune_thresholds

from conftest import ARTICLE_GROUPS, MIXED_GROUPS, tiny_config, tiny_model


def labels_for(config, rows):
    return np.array([config.encode_labels(row) for row in rows], dtype=np.float32)


ROWS = [
    {"score": "bad", "topics": ["food"], "stars": 1.0},
    {"score": "bad", "topics": [], "stars": 2.0},
    {"score": "good", "topics": ["food", "service"], "stars": 5.0},
    {"score": "ok", "topics": [], "stars": None},
]


def test_loss_scales_are_the_uninformed_losses():
    config = tiny_config(MIXED_GROUPS, loss_weighting="fixed")
    scales = fit_loss_scales(config, labels_for(config, ROWS))
    prior = torch.tensor([0.5, 0.25, 0.25])  # bad, ok, good
    assert scales["score"] == pytest.approx(-(prior * prior.log()).sum().item(), rel=1e-6)
    frequencies = torch.tensor([0.5, 0.25, 0.0]).clamp(1e-6, 1 - 1e-6)
    expected = F.binary_cross_entropy(frequencies.expand(4, 3), torch.tensor(labels_for(config, ROWS)[:, 3:6]))
    assert scales["topics"] == pytest.approx(expected.item(), rel=1e-4)
    assert scales["stars"] == pytest.approx(np.var([1.0, 2.0, 5.0]), rel=1e-6)
    assert config.loss_weighting == "normalized" and config.groups[2]["loss_scale"] == scales["stars"]
    balanced = tiny_config(MIXED_GROUPS)
    fit_loss_scales(balanced, labels_for(balanced, ROWS))  # the head was built for it: the weighting stays
    assert balanced.loss_weighting == "balanced" and balanced.groups[2]["loss_scale"] == scales["stars"]


def test_normalized_weighting_divides_each_group_by_its_scale():
    config = tiny_config(MIXED_GROUPS, loss_weighting="fixed")
    labels = torch.tensor(labels_for(config, ROWS[:3]))
    logits = torch.randn(3, config.num_columns)
    fixed, parts = multi_group_loss(logits, labels, config)
    scales = fit_loss_scales(config, labels.numpy())
    normalized, _ = multi_group_loss(logits, labels, config)
    expected = sum(g["weight"] * parts[g["name"]] / scales[g["name"]] for g in config.groups)
    torch.testing.assert_close(normalized, expected)
    assert not torch.isclose(fixed, normalized)


def test_uncertainty_weighting_learns_one_log_variance_per_group_and_round_trips(tmp_path):
    model = tiny_model(ARTICLE_GROUPS, loss_weighting="uncertainty")
    assert model.classifier.log_vars.shape == (3,) and torch.all(model.classifier.log_vars == 0)
    with torch.no_grad():
        model.classifier.log_vars.copy_(torch.tensor([0.1, -0.2, 0.3]))
    model.save_pretrained(tmp_path)
    reloaded = type(model).from_pretrained(tmp_path)
    torch.testing.assert_close(reloaded.classifier.log_vars, model.classifier.log_vars)
    logits, labels = torch.randn(2, 27), torch.tensor(labels_for(model.config, [{"global_score": "S1"}] * 2))
    loss, parts = multi_group_loss(logits, labels, model.config, model.classifier.log_vars)
    lv = model.classifier.log_vars[0]
    torch.testing.assert_close(loss, 0.7 * (torch.exp(-lv) * parts["global_score"] + lv) + 0 * logits.sum())


def test_class_weights_match_scikit_learn_balanced():
    config = tiny_config(MIXED_GROUPS)
    weights = fit_class_weights(config, labels_for(config, ROWS))
    classes = np.array([0, 0, 2, 1])
    assert weights["score"] == pytest.approx(compute_class_weight("balanced", classes=np.arange(3), y=classes))
    assert weights["topics"] == [1.0, 3.0, 20.0]  # neg/pos = 2/2, 3/1, never seen -> max
    assert config.groups[0]["class_weight"] == weights["score"] and config.groups[1]["pos_weight"][2] == 20.0


def test_tuned_thresholds_beat_the_default_and_match_brute_force():
    rng = np.random.default_rng(0)
    config = tiny_config(MIXED_GROUPS)
    truth = rng.random((300, 3)) < np.array([0.5, 0.1, 0.3])
    logits = np.zeros((300, 7), dtype=np.float32)
    logits[:, 3:6] = np.where(truth, rng.normal(-0.5, 1, truth.shape), rng.normal(-2, 1, truth.shape))
    labels = np.zeros((300, 7), dtype=np.float32)
    labels[:, 3:6] = truth
    labels[:, 6] = np.nan
    before = compute_metrics(config, logits, labels)["topics_f1_macro"]
    grid = np.round(np.arange(0.05, 0.951, 0.025), 3)
    tuned = tune_thresholds(config, logits, labels, grid=grid, per_label=True)["topics"]
    probs = torch.sigmoid(torch.from_numpy(logits[:, 3:6])).numpy()
    for j, threshold in enumerate(tuned):
        best = max(grid, key=lambda t: (f1_score(truth[:, j], probs[:, j] >= t), -t))
        assert f1_score(truth[:, j], probs[:, j] >= threshold) == pytest.approx(
            f1_score(truth[:, j], probs[:, j] >= best)
        )
    after = compute_metrics(config, logits, labels)["topics_f1_macro"]
    assert config.groups[1]["threshold"] == tuned and after > before + 0.05


def test_callbacks_log_group_losses_and_print_the_table(tmp_path, capsys):
    model = tiny_model(ARTICLE_GROUPS)
    trainer = make_trainer(
        tmp_path,
        model,
        max_steps=4,
        lr=1e-3,
        compute_metrics=build_compute_metrics(model.config),
        eval_strategy="steps",
        eval_steps=4,
    )
    attach_callbacks(trainer)
    trainer.train()
    train_logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(train_logs) == 4 and all(
        {"loss_global_score", "loss_emotions", "loss_causes"} <= set(e) for e in train_logs
    )
    first = train_logs[0]
    weighted = 0.7 * first["loss_global_score"] + 4 * first["loss_emotions"] + 4 * first["loss_causes"]
    assert weighted == pytest.approx(first["loss"], rel=1e-3)
    evaluation = next(entry for entry in trainer.state.log_history if "eval_loss" in entry)
    assert {"eval_loss_emotions", "eval_emotions_f1_macro", "eval_mean_f1_macro"} <= set(evaluation)
    printed = capsys.readouterr().out
    assert "Evaluation (" in printed and "global_score" in printed and "mean of group macro F1" in printed
