"""`scripts/bench_quality.py`'s own logic, without training: its cache (kept, reused, refused when trained under
other defaults or recipes) and its scoring (the official scorer's misses for labels the model lacks).

Training is replaced by seeded random logits: what is tested is what the README's tables are read through."""

import importlib.util

import numpy as np
import pytest
import torch
from datasets import Dataset
from sklearn.metrics import f1_score

from multigroup import MultiGroupConfig

from conftest import REPO_ROOT

_spec = importlib.util.spec_from_file_location("bench_quality", REPO_ROOT / "scripts" / "bench_quality.py")
bench_quality = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_quality)

TRAIN = Dataset.from_list(
    [
        {"text": "good food", "polarity": "positive", "aspects": ["FOOD"]},
        {"text": "rude staff", "polarity": "negative", "aspects": ["SERVICE"]},
        {"text": "fine place", "polarity": "positive", "aspects": []},
        {"text": "slow and cold", "polarity": "negative", "aspects": ["FOOD", "SERVICE"]},
    ]
)


def _logits(groups: list[dict], seed: int) -> dict:
    columns = sum(len(group["labels"]) for group in groups)
    rng = np.random.default_rng(seed)
    return {split: rng.normal(size=(6, columns)).astype(np.float32) for split in ("validation", "test")}


@pytest.fixture
def trainer(monkeypatch):
    """Both ways of training replaced by seeded random logits for 6 validation and 6 test rows: `train_and_predict`
    (the in-process arms) and `cli_logits` (`multigroup train`'s arms). Returns the calls and what each returned."""
    calls = []

    def in_process(arm, groups, data, epochs, seed):
        calls.append({"arm": arm, "groups": [group["name"] for group in groups], "logits": _logits(groups, seed)})
        return calls[-1]["logits"], 1.5, {"groups": groups, "relations": []}

    def command(groups, data, data_dir, epochs, seed, folder, extra=()):
        calls.append(
            {"arm": folder.name, "groups": [group["name"] for group in groups], "logits": _logits(groups, seed)}
        )
        return calls[-1]["logits"], 2.5, {"groups": groups, "relations": []}

    monkeypatch.setattr(bench_quality, "train_and_predict", in_process)
    monkeypatch.setattr(bench_quality, "cli_logits", command)
    return calls


def test_a_model_is_trained_once_then_read_from_the_cache(tmp_path, trainer):
    groups = bench_quality.spec_from_data(TRAIN)
    first, seconds = bench_quality.arm_logits("plain", groups, {}, tmp_path, 2, 0, tmp_path, train=False)
    again, _ = bench_quality.arm_logits("plain", groups, {}, tmp_path, 2, 0, tmp_path, train=False)
    assert len(trainer) == 1 and seconds == 1.5
    for split in ("validation", "test"):  # what training returned, kept and read back
        np.testing.assert_array_equal(first[0][1][split], trainer[0]["logits"][split])
        np.testing.assert_array_equal(again[0][1][split], trainer[0]["logits"][split])
    bench_quality.arm_logits("plain", groups, {}, tmp_path, 2, 0, tmp_path, train=True)  # --retrain
    assert len(trainer) == 2


def test_the_single_arm_trains_one_model_per_group_in_group_order(tmp_path, trainer):
    groups = bench_quality.spec_from_data(TRAIN)
    models, seconds = bench_quality.arm_logits("single", groups, {}, tmp_path, 2, 0, tmp_path, train=False)
    assert [call["groups"] for call in trainer] == [["polarity"], ["aspects"]]
    assert [call["arm"] for call in trainer] == ["single-e2-s0-0", "single-e2-s0-1"]  # the names per_label reads
    assert [[group["name"] for group in spec["groups"]] for spec, _ in models] == [["polarity"], ["aspects"]]
    assert seconds == 5.0  # both models' training time


def test_a_cache_trained_under_another_recipe_or_without_a_record_is_refused(tmp_path, trainer, monkeypatch):
    groups = bench_quality.spec_from_data(TRAIN)
    bench_quality.arm_logits("plain", groups, {}, tmp_path, 2, 0, tmp_path, train=False)
    monkeypatch.setitem(bench_quality.MODEL_ARGS, "head_multiplier", 60.0)
    with pytest.raises(ValueError, match="--retrain, or give it its own --cache-dir"):
        bench_quality.arm_logits("plain", groups, {}, tmp_path, 2, 0, tmp_path, train=False)
    monkeypatch.delitem(bench_quality.MODEL_ARGS, "head_multiplier")
    with monkeypatch.context() as patched:  # multigroup's defaults changed since the cache was trained
        patched.setattr(bench_quality, "product", lambda: {"defaults": {"learning_rate": 2e-4}})
        with pytest.raises(ValueError, match="trained under the product"):
            bench_quality.arm_logits("plain", groups, {}, tmp_path, 2, 0, tmp_path, train=False)
    path = tmp_path / f"{bench_quality.model_name('plain', 2, 0, 0)}.npz"
    with np.load(path) as stored:
        kept = dict(stored)
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

    config = MultiGroupConfig(groups=groups)  # the reference: the model's own decode, scored by scikit-learn
    decoded = config.group_predictions(torch.from_numpy(logits["test"]))
    aspects = config.group("aspects")["labels"]
    truth = np.array(
        [[label in row["aspects"] for label in aspects] + [row["aspects"] == ["FOOD", "PRICE"]] for row in test]
    )
    chosen = np.hstack([decoded["aspects"]["selected"].numpy(), np.zeros((3, 1), dtype=bool)])  # no PRICE column
    assert result["aspects"]["f1_micro"] == pytest.approx(f1_score(truth, chosen, average="micro"))
    assert result["aspects"]["gold_per_text"] == pytest.approx(3 / 3)  # FOOD, PRICE, SERVICE over 3 texts
    polarity = config.group("polarity")["labels"]
    expected = f1_score(
        [polarity.index(row["polarity"]) for row in test], decoded["polarity"]["index"], average="macro"
    )
    assert result["polarity"]["f1_macro"] == pytest.approx(expected)
