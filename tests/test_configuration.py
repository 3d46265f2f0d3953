import json
import math

import pytest
import torch

from multigroup import MultiGroupConfig

from conftest import ARTICLE_GROUPS, MIXED_GROUPS, tiny_config


def test_article_groups_layout():
    config = tiny_config(ARTICLE_GROUPS)
    assert config.num_columns == 27
    assert config.group_names == ["global_score", "emotions", "causes"]
    assert config.group_slices == {"global_score": slice(0, 5), "emotions": slice(5, 15), "causes": slice(15, 27)}
    assert config.groups[1]["threshold"] == 0.3 and config.groups[0]["weight"] == 0.7


def test_mixed_layout_has_one_column_per_regression_group():
    config = tiny_config(MIXED_GROUPS)
    assert config.num_columns == 3 + 3 + 1
    assert config.group_slices["stars"] == slice(6, 7)


def test_encode_labels_article_example():
    config = tiny_config(ARTICLE_GROUPS)
    row = config.encode_labels({"global_score": "S2", "emotions": ["E1", "E3"], "causes": []})
    assert row[:5] == [0, 1, 0, 0, 0]
    assert row[5:15] == [1, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    assert row[15:] == [0] * 12


@pytest.mark.parametrize("missing", [{}, {"global_score": None}])
def test_missing_group_is_nan_in_its_columns_only(missing):
    config = tiny_config(ARTICLE_GROUPS)
    row = config.encode_labels({"emotions": ["E2"], "causes": ["C12"], **missing})
    assert all(math.isnan(v) for v in row[:5])
    assert not any(math.isnan(v) for v in row[5:])


def test_regression_target_and_missing_marker_do_not_mix():
    config = tiny_config(MIXED_GROUPS)
    assert config.encode_labels({"stars": 0.0})[-1] == 0.0
    assert math.isnan(config.encode_labels({})[-1])
    with pytest.raises(ValueError, match="`stars`.*finite number"):
        config.encode_labels({"stars": float("nan")})


@pytest.mark.parametrize(
    "example, error, match",
    [
        ({"global_score": "S9"}, ValueError, "`global_score`: unknown label 'S9'"),
        ({"emotions": ["E1", "E99"]}, ValueError, r"`emotions`: unknown label\(s\) \['E99'\]"),
        ({"global_score": ["S1"]}, TypeError, "`global_score` is multiclass"),
        ({"emotions": "E1"}, TypeError, "`emotions` is multilabel"),
    ],
)
def test_encode_labels_errors_name_group_and_label(example, error, match):
    with pytest.raises(error, match=match):
        tiny_config(ARTICLE_GROUPS).encode_labels(example)


def test_ignore_unknown_labels_drops_them():
    config = tiny_config(ARTICLE_GROUPS)
    row = config.encode_labels({"global_score": "S9", "emotions": ["E1", "E99"]}, ignore_unknown_labels=True)
    assert all(math.isnan(v) for v in row[:5]) and row[5] == 1 and sum(row[6:15]) == 0


@pytest.mark.parametrize(
    "group, match",
    [
        ({"name": "a b", "type": "multiclass", "labels": ["x", "y"]}, "identifier-like"),
        ({"name": "g", "type": "ordinal", "labels": ["x", "y"]}, "`g`: `type` must be one of"),
        ({"name": "g", "type": "multiclass", "labels": ["x"]}, "at least 2 labels"),
        ({"name": "g", "type": "multilabel", "labels": []}, "at least 1 labels"),
        ({"name": "g", "type": "multilabel", "labels": ["x", "x"]}, r"duplicate labels \['x'\]"),
        ({"name": "g", "type": "multilabel", "labels": ["x", 3]}, "non-empty strings"),
        ({"name": "g", "type": "multiclass", "labels": ["x", "y"], "weight": -1}, "`weight` must be a finite"),
        ({"name": "g", "type": "multiclass", "labels": ["x", "y"], "weight": float("inf")}, "`weight`"),
        ({"name": "g", "type": "multilabel", "labels": ["x"], "threshold": 1.0}, "strictly between 0 and 1"),
        ({"name": "g", "type": "multilabel", "labels": ["x", "y"], "threshold": [0.5]}, "has 1 values but"),
        ({"name": "g", "type": "multiclass", "labels": ["x", "y"], "threshold": 0.3}, r"\['threshold'\] do not apply"),
        ({"name": "g", "type": "regression", "labels": ["x"]}, "regression group has no `labels`"),
        ({"name": "g", "type": "multiclass", "labels": ["x", "y"], "colour": 1}, r"unknown field\(s\) \['colour'\]"),
    ],
)
def test_invalid_group_specs_raise(group, match):
    with pytest.raises(ValueError, match=match):
        MultiGroupConfig(groups=[group])


def test_duplicate_names_and_dict_groups_are_refused():
    with pytest.raises(ValueError, match=r"unique, got \['a'\]"):
        MultiGroupConfig(groups=[{"name": "a", "type": "regression"}, {"name": "a", "type": "regression"}])
    with pytest.raises(ValueError, match="order would be lost"):
        MultiGroupConfig(groups={"a": {"type": "regression"}})


def test_save_keeps_group_order_and_reloads_equal(tmp_path):
    groups = [{"name": name, "type": "regression"} for name in ["zeta", "alpha", "mid"]]
    config = tiny_config(groups)
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert [g["name"] for g in saved["groups"]] == ["zeta", "alpha", "mid"]
    reloaded = MultiGroupConfig.from_pretrained(tmp_path)
    assert reloaded.groups == config.groups and reloaded.group_slices == config.group_slices
    assert reloaded.hidden_size == 32


@pytest.mark.parametrize("family", ["bert", "camembert"])
def test_from_plain_encoder_checkpoint_takes_encoder_fields(tmp_path, family):
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    CONFIG_MAPPING[family](hidden_size=48, num_attention_heads=4, pad_token_id=7).save_pretrained(tmp_path)
    config = MultiGroupConfig.from_pretrained(tmp_path, groups=ARTICLE_GROUPS)
    assert (config.encoder_type, config.hidden_size, config.pad_token_id) == (family, 48, 7)
    assert config.num_columns == 27
    bare = MultiGroupConfig.from_pretrained(tmp_path)  # PEFT reads a base model's config this way
    assert bare.groups is None and bare.hidden_size == 48
    with pytest.raises(ValueError, match=f"plain `{family}` encoder with no label groups"):
        bare.require_groups()


def test_decode_shapes_and_thresholds():
    config = tiny_config(MIXED_GROUPS)
    logits = torch.tensor([[0.0, 2.0, 0.0, 0.0, -5.0, 0.2, 1.5], [3.0, 0.0, 0.0, 5.0, 5.0, 5.0, -0.5]])
    first, second = config.decode(logits)
    assert first["score"]["label"] == "ok" and first["stars"] == {"value": 1.5}
    # sigmoid(0) = 0.5 >= 0.4 (food), sigmoid(0.2) = 0.55 < 0.6 (price)
    assert [p["label"] for p in first["topics"]] == ["food"]
    assert [p["label"] for p in second["topics"]] == ["food", "service", "price"]
    assert config.decode(logits, threshold=0.99)[0]["topics"] == []
    every = config.decode(logits, top_k=None, groups=["topics"])[0]
    assert list(every) == ["topics"] and [p["label"] for p in every["topics"]] == ["price", "food", "service"]


def test_allow_empty_false_returns_best_label():
    groups = [{"name": "topics", "type": "multilabel", "labels": ["a", "b"], "allow_empty": False}]
    config = tiny_config(groups)
    assert config.decode(torch.tensor([[-3.0, -1.0]]))[0]["topics"][0]["label"] == "b"


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"top_k": 0}, ValueError, "`top_k` must be a positive int"),
        ({"groups": ["nope"]}, ValueError, "Unknown group 'nope'"),
        ({"groups": "score"}, TypeError, "list of group names"),
        ({"threshold": 1.5}, ValueError, "strictly between 0 and 1"),
        ({"threshold": {"score": 0.5}}, ValueError, "not a multilabel group"),
    ],
)
def test_decode_argument_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        tiny_config(MIXED_GROUPS).decode(torch.zeros(1, 7), **kwargs)


def test_a_familys_alias_reads_and_writes_its_own_field():
    config = MultiGroupConfig(groups=ARTICLE_GROUPS, encoder_type="distilbert", dim=32, n_heads=4, n_layers=2)
    assert config.hidden_size == 32 and config.num_attention_heads == 4
    config.hidden_size = 64
    assert config.dim == 64 and config.hidden_size == 64 and "hidden_size" not in config.to_dict()
