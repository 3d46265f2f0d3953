"""Opt-in distillation from per-group teachers with teacher annealing (`multigroup.distill`, `train --teachers`)."""

import json
import math

import numpy as np
import torch
from transformers import TrainerControl, TrainerState, TrainingArguments

from helpers import write_jsonl
from multigroup.cli import main
from multigroup.distill import TeacherAnnealing, TeacherMix, teacher_targets

from conftest import MIXED_GROUPS, TEXTS, encode, make_tokenizer, tiny_model

NAN = float("nan")


def _collate(features):
    return {"labels": torch.tensor([feature["labels"] for feature in features])}


def test_the_mix_is_a_weighted_mean_where_a_teacher_speaks():
    mix = TeacherMix(_collate, columns=3, weight=0.25)
    rows = [{"labels": [1.0, 0.0, NAN, 0.6, NAN, 0.9]}, {"labels": [0.0, 1.0, 2.0, 0.2, 0.4, NAN]}]
    labels = mix(rows)["labels"]
    expected = torch.tensor([[0.25 * 0.6 + 0.75, 0.0, NAN], [0.25 * 0.2, 0.25 * 0.4 + 0.75, 2.0]])
    torch.testing.assert_close(labels, expected, equal_nan=True)
    assert torch.equal(mix([{"labels": [1.0, 0.0, 2.0]}])["labels"], torch.tensor([[1.0, 0.0, 2.0]]))  # evaluation


def test_annealing_moves_the_teachers_weight_from_1_to_0():
    mix = TeacherMix(_collate, columns=1)
    callback, state = TeacherAnnealing(mix), TrainerState(max_steps=8)
    weights = []
    for step in range(8):
        state.global_step = step
        callback.on_step_begin(TrainingArguments("unused"), state, TrainerControl())
        weights.append(mix.weight)
    assert weights == [1 - step / 8 for step in range(8)]


def test_teacher_targets_are_the_teachers_probabilities_in_the_students_columns(tmp_path):
    """A teacher of `score` alone (labels in another order) and one of `topics` without `price`."""
    groups = {group["name"]: group for group in MIXED_GROUPS}
    teachers = [
        dict(groups["score"], labels=["good", "bad", "ok"]),
        dict(groups["topics"], labels=["service", "food"], threshold=0.3),
    ]
    expected = np.full((len(TEXTS), 7), np.nan, dtype=np.float32)
    for i, (group, order) in enumerate(zip(teachers, ([2, 0, 1], [4, 3]))):
        teacher = tiny_model([group], seed=i)
        teacher.save_pretrained(tmp_path / group["name"])
        make_tokenizer().save_pretrained(tmp_path / group["name"])
        with torch.no_grad():
            logits = teacher(**encode(make_tokenizer())).logits
        expected[:, order] = (logits.softmax(-1) if i == 0 else logits.sigmoid()).numpy()
    student = tiny_model(MIXED_GROUPS).config
    got = teacher_targets(student, [tmp_path / "score", tmp_path / "topics"], TEXTS)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.isnan(got[:, [5, 6]]).all()  # price and stars: no teacher


def test_train_with_teachers_records_them(tmp_path, capsys):
    rows = [{"text": text, "score": score, "topics": topics} for text, score, topics in
            zip(TEXTS, ["good", "bad", "good", "ok"], [["food"], ["service"], [], ["price", "food"]])]  # fmt: skip
    data = tmp_path / "train.jsonl"
    write_jsonl(data, rows)
    encoder = tmp_path / "encoder"
    tiny_model([MIXED_GROUPS[0]]).roberta.save_pretrained(encoder)  # the bare encoder
    make_tokenizer().save_pretrained(encoder)
    common = ["--train-file", str(data), "--model", str(encoder), "--max_steps", "2", "--disable_tqdm", "true"]
    assert main(["train", *common, "--multiclass", "score", "--output-dir", str(tmp_path / "teacher")]) == 0
    args = ["train", *common, "--multiclass", "score", "--multilabel", "topics", "--output-dir", str(tmp_path / "m")]
    assert main([*args, "--teachers", str(tmp_path / "teacher")]) == 0
    training = json.loads((tmp_path / "m" / "metrics.json").read_text())["training"]
    assert training["teachers"] == [str(tmp_path / "teacher")] or training["teachers"][0].endswith("teacher")
    assert main([*args, "--teachers", str(tmp_path / "nope")]) == 2
    assert "--teachers" in capsys.readouterr().err and not math.isnan(training["learning_rate"])
