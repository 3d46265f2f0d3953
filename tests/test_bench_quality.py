"""`scripts/bench_quality.py`'s own logic, without training: its cache (kept, reused, refused when trained under
other defaults or recipes) and its scoring (the official scorer's misses for labels the model lacks).

Training is replaced by seeded random logits: what is tested is what the README's tables are read through."""

import sys

import numpy as np
import pytest
from datasets import Dataset
from sklearn.metrics import f1_score

from multigroup import MultiGroupConfig

from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import bench_quality  # noqa: E402

TRAIN = Dataset.from_list(
    [
        {"text": "good food", "polarity": "positive", "aspects": ["FOOD"]},
        {"text": "rude staff", "polarity": "negative", "aspects": ["SERVICE"]},
        {"text": "fine place", "polarity": "positive", "aspects": []},
        {"text": "slow and cold", "polarity": "negative", "aspects": ["FOOD", "SERVICE"]},
    ]
)


@pytest.fixture
def trainer(monkeypatch):
    """`train_and_predict` replaced by seeded random logits for 6 validation and 6 test rows; the calls it got."""
    calls = []

    def fake(arm, groups, data, epochs, seed):
        calls.append((arm, epochs, seed))
        columns = sum(len(group["labels"]) for group in groups)
        rng = np.random.default_rng(seed)
        logits = {split: rng.normal(size=(6, columns)).astype(np.float32) for split in ("validation", "test")}
        return logits, 1.5, {"groups": groups, "relations": []}

    monkeypatch.setattr(bench_quality, "train_and_predict", fake)
    return calls


def test_a_model_is_trained_once_then_read_from_the_cache(tmp_path, trainer):
    groups = bench_quality.spec_from_data(TRAIN)
    first, seconds = bench_quality.arm_logits("plain", groups, {}, tmp_path, 2, 0, tmp_path, train=False)
    again, _ = bench_quality.arm_logits("plain", groups, {}, tmp_path, 2, 0, tmp_path, train=False)
    assert trainer == [("plain", 2, 0)] and seconds == 1.5
    np.testing.assert_array_equal(first[0][1]["test"], again[0][1]["test"])
    bench_quality.arm_logits("plain", groups, {}, tmp_path, 2, 0, tmp_path, train=True)  # --retrain
    assert len(trainer) == 2


def test_a_cache_trained_under_another_recipe_or_without_a_record_is_refused(tmp_path, trainer, monkeypatch):
    groups = bench_quality.spec_from_data(TRAIN)
    bench_quality.arm_logits("plain", groups, {}, tmp_path, 2, 0, tmp_path, train=False)
    monkeypatch.setitem(bench_quality.MODEL_ARGS, "head_multiplier", 60.0)
    with pytest.raises(ValueError, match="--retrain, or give it its own --cache-dir"):
        bench_quality.arm_logits("plain", groups, {}, tmp_path, 2, 0, tmp_path, train=False)
    monkeypatch.delitem(bench_quality.MODEL_ARGS, "head_multiplier")
    path = tmp_path / f"{bench_quality.model_name('plain', 2, 0, 0)}.npz"
    kept = dict(np.load(path))
    np.savez(path, **{key: value for key, value in kept.items() if key != "product"})  # a cache from before it
    with pytest.raises(ValueError, match="unrecorded"):
        bench_quality.arm_logits("plain", groups, {}, tmp_path, 2, 0, tmp_path, train=False)


def test_score_counts_labels_the_model_lacks_as_misses():
    groups = bench_quality.spec_from_data(TRAIN)
    test = [
        {"text": "a", "polarity": "positive", "aspects": ["FOOD", "PRICE"]},  # PRICE: never seen in training
        {"text": "b", "polarity": "negative", "aspects": ["SERVICE"]},
        {"text": "c", "polarity": "positive", "aspects": []},
    ]
    rng = np.random.default_rng(0)
    logits = {split: rng.normal(size=(3, 4)).astype(np.float32) for split in ("validation", "test")}
    result = bench_quality.score({"groups": groups}, logits, {"validation": test, "test": test}, rule=None)

    aspects = MultiGroupConfig(groups=groups).groups[1]  # with the default threshold the model decodes with
    columns = [aspects["labels"].index(label) + 2 for label in ("FOOD", "SERVICE")]
    threshold = aspects["threshold"]
    predicted = 1 / (1 + np.exp(-logits["test"][:, columns])) > threshold
    gold = np.array([[1, 0], [0, 1], [0, 0]])
    tp = int((predicted & (gold == 1)).sum())
    fp, fn = int((predicted & (gold == 0)).sum()), int((~predicted & (gold == 1)).sum()) + 1  # + PRICE
    assert result["aspects"]["f1_micro"] == pytest.approx(2 * tp / max(2 * tp + fp + fn, 1))
    assert result["aspects"]["gold_per_text"] == pytest.approx(3 / 3)  # FOOD, PRICE, SERVICE over 3 texts
    polarity = next(group for group in groups if group["name"] == "polarity")
    chosen = logits["test"][:, :2].argmax(1)
    truth = [polarity["labels"].index(row["polarity"]) for row in test]
    assert result["polarity"]["f1_macro"] == pytest.approx(f1_score(truth, chosen, average="macro"))
