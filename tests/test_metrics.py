import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    precision_recall_fscore_support,
    root_mean_squared_error,
)
from transformers import EvalPrediction

from multigroup.metrics import (
    build_compute_metrics,
    classification_report,
    compute_metrics,
    format_report,
    unseen_label_counts,
)

from conftest import MIXED_GROUPS, tiny_config

GROUPS = MIXED_GROUPS + [{"name": "emotions", "type": "multilabel", "labels": ["joy", "anger", "fear", "calm"]}]


def random_batch(config, n=64, missing=0.0, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, config.num_columns)).astype(np.float32)
    rows = []
    for _ in range(n):
        example = {
            "score": str(rng.choice(["bad", "ok", "good"])),
            "topics": [t for t in ["food", "service", "price"] if rng.random() < 0.4],
            "stars": float(rng.normal()),
            "emotions": [t for t in ["joy", "anger", "fear", "calm"] if rng.random() < 0.3],
        }
        rows.append({name: (None if rng.random() < missing else value) for name, value in example.items()})
    labels = np.array([config.encode_labels(row) for row in rows], dtype=np.float32)
    return logits, labels


def sklearn_reference(config, logits, labels):
    """Each group's predictions rebuilt by hand (argmax, sigmoid >= threshold), scored by scikit-learn."""
    reference = {}
    for group, columns in zip(config.groups, config.group_slices.values()):
        present = ~np.isnan(labels[:, columns]).any(1)
        scores, target = logits[present, columns], labels[present, columns]
        name, k = group["name"], len(group["labels"])
        if group["type"] == "regression":
            reference[f"{name}_mae"] = mean_absolute_error(target[:, 0], scores[:, 0])
            reference[f"{name}_rmse"] = root_mean_squared_error(target[:, 0], scores[:, 0])
            continue
        if group["type"] == "multiclass":
            y_true, y_pred = target.argmax(1), scores.argmax(1)
            reference[f"{name}_accuracy"] = accuracy_score(y_true, y_pred)
        else:
            y_true = target.astype(int)
            y_pred = (torch.sigmoid(torch.from_numpy(scores)).numpy() >= np.array(group["threshold"])).astype(int)
            reference[f"{name}_subset_accuracy"] = accuracy_score(y_true, y_pred)
        for average in ("micro", "macro"):
            reference[f"{name}_f1_{average}"] = f1_score(
                y_true, y_pred, average=average, labels=list(range(k)), zero_division=0
            )
    return reference


@pytest.mark.parametrize("missing", [0.0, 0.3])
def test_group_metrics_equal_scikit_learn_and_skip_missing_rows(missing):
    config = tiny_config(GROUPS)
    logits, labels = random_batch(config, missing=missing)
    metrics = compute_metrics(config, logits, labels)
    for key, value in sklearn_reference(config, logits, labels).items():
        assert metrics[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
    if missing:  # the same metrics on the present rows only, computed on all rows, would differ
        full = compute_metrics(config, logits, np.nan_to_num(labels, nan=0.0))
        assert full["topics_f1_macro"] != metrics["topics_f1_macro"]


def test_overall_f1_over_all_classification_columns_equals_scikit_learn():
    config = tiny_config(GROUPS)
    logits, labels = random_batch(config)
    metrics = compute_metrics(config, logits, labels)
    columns = [c for g, s in zip(config.groups, config.group_slices.values()) if g["type"] != "regression"
               for c in range(s.start, s.stop)]  # fmt: skip
    y_true = labels[:, columns].astype(int)
    predictions = config.group_predictions(torch.from_numpy(logits))
    y_pred = np.concatenate(
        [
            np.eye(3, dtype=int)[predictions["score"]["index"].numpy()],
            predictions["topics"]["selected"].numpy().astype(int),
            predictions["emotions"]["selected"].numpy().astype(int),
        ],
        axis=1,
    )
    for average in ("micro", "macro"):
        expected = f1_score(y_true, y_pred, average=average, zero_division=0)
        assert metrics[f"f1_{average}"] == pytest.approx(expected, abs=1e-9)
    expected_mean = np.mean([metrics[f"{name}_f1_macro"] for name in ("score", "topics", "emotions")])
    assert metrics["mean_f1_macro"] == pytest.approx(expected_mean)


def test_group_losses_in_metrics_equal_torch():
    config = tiny_config(GROUPS)
    logits, labels = random_batch(config)
    metrics = compute_metrics(config, logits, labels)
    expected = F.cross_entropy(torch.from_numpy(logits[:, :3]), torch.from_numpy(labels[:, :3]))
    assert metrics["loss_score"] == pytest.approx(expected.item(), rel=1e-6)


def test_thresholds_from_the_config_drive_the_metrics():
    config = tiny_config(GROUPS)
    logits, labels = random_batch(config)
    low, high = compute_metrics(config, logits, labels, threshold=0.05), compute_metrics(config, logits, labels, 0.95)
    assert low["topics_f1_micro"] != high["topics_f1_micro"]


def test_build_compute_metrics_for_trainer():
    config = tiny_config(GROUPS)
    logits, labels = random_batch(config)
    metrics = build_compute_metrics(config)(EvalPrediction(predictions=logits, label_ids=labels))
    assert metrics == compute_metrics(config, logits, labels)


def test_classification_report_equals_scikit_learn_and_flags_rare_labels():
    config = tiny_config(GROUPS)
    logits, labels = random_batch(config, n=200)
    labels[:, 5] = 0.0  # make "price" rare: 2 positives
    labels[:2, 5] = 1.0
    report = classification_report(config, logits, labels)
    y_true = labels[:, 3:6].astype(int)
    y_pred = (torch.sigmoid(torch.from_numpy(logits[:, 3:6])).numpy() >= np.array([0.4, 0.5, 0.6])).astype(int)
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, zero_division=0)
    for j, row in enumerate(report["topics"]):
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx(
            (precision[j], recall[j], f1[j], support[j])
        )
    assert [row["label"] for row in report["topics"] if row["rare"]] == ["price"]
    assert "rare (low support), expect a poor score: price" in format_report(report)
    assert "stars" not in report


def test_evaluate_module_loads_offline_and_equals_compute_metrics():
    evaluate = pytest.importorskip("evaluate")
    import multigroup

    config = tiny_config(GROUPS)
    logits, labels = random_batch(config, missing=0.2)
    metric = evaluate.load(multigroup.EVALUATE_MODULE)
    result = metric.compute(predictions=logits, references=labels, config=config)
    assert result == pytest.approx(compute_metrics(config, logits, labels))
    with pytest.raises(ValueError, match="Pass config=model.config"):
        metric.compute(predictions=logits, references=labels)


def test_gold_labels_the_model_lacks_count_as_misses_like_the_official_scorer():
    config = tiny_config(MIXED_GROUPS)
    rows = [
        {"score": "ok", "topics": ["food", "parking"]},  # `parking`: seen only in this data
        {"score": "bad", "topics": ["parking", "music"]},
        {"score": "good", "topics": ["service"]},
    ]
    assert unseen_label_counts(config, rows) == {"topics": 3}
    labels = np.array([config.encode_labels(row, ignore_unknown_labels=True) for row in rows], dtype=np.float32)
    logits = np.where(labels > 0.5, 3.0, -3.0).astype(np.float32)
    logits[:, 3] = [3.0, 3.0, -3.0]  # `food` also predicted for row 2: one false positive
    logits[:, 6] = 0.0
    scored = compute_metrics(config, logits, labels, missed=unseen_label_counts(config, rows))
    # The reference: one more column per unseen label, true where the text carries it, never predicted.
    truth = np.concatenate([labels[:, 3:6], [[1, 0], [1, 1], [0, 0]]], axis=1)
    predicted = np.concatenate([logits[:, 3:6] > 0, np.zeros((3, 2), bool)], axis=1)
    assert scored["topics_f1_micro"] == pytest.approx(f1_score(truth, predicted, average="micro"))
    plain = compute_metrics(config, logits, labels)
    assert plain["topics_f1_micro"] > scored["topics_f1_micro"]
    assert scored["topics_f1_macro"] == plain["topics_f1_macro"]  # over the model's own labels
    assert scored["f1_micro"] < plain["f1_micro"] and scored["f1_macro"] == plain["f1_macro"]
