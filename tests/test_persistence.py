"""Nothing lost: round trips, old configs, interrupted saves, resumed training."""

import shutil
from pathlib import Path

import pytest
import torch
import transformers.modeling_utils
from transformers import TrainerCallback

from helpers import make_trainer
from multigroup import AutoModelForMultiGroupClassification, MultiGroupConfig

from conftest import ARTICLE_GROUPS, MIXED_GROUPS, TEXTS, TINY_FAMILIES, encode, make_tokenizer, tiny_model

FIXTURE = Path(__file__).parent / "fixtures" / "config_multigroup_0.1.0.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle")


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_save_then_load_gives_bit_identical_logits(family, tmp_path):
    model = tiny_model(MIXED_GROUPS, family, loss_weighting="uncertainty")
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForMultiGroupClassification.from_pretrained(tmp_path).eval()
    assert type(reloaded) is type(model) and reloaded.config.groups == model.config.groups
    inputs = encode(make_tokenizer(family))
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, reloaded(**inputs).logits)
    assert not [path for path in tmp_path.rglob("*") if path.suffix in PICKLE_SUFFIXES]


def test_config_written_by_version_0_1_0_still_loads():
    config = MultiGroupConfig.from_pretrained(FIXTURE)
    assert config.group_names == ["global_score", "emotions", "causes", "score", "topics", "stars"]
    assert config.num_columns == 27 + 7 and config.loss_weighting == "normalized"
    assert config.groups[0]["loss_scale"] == 1.2 and config.groups[4]["pos_weight"] == [1.0, 2.0, 3.0]
    assert config.groups[4]["threshold"] == [0.4, 0.5, 0.6]
    model = AutoModelForMultiGroupClassification.from_config(config).eval()
    with torch.no_grad():
        rows = config.decode(model(**encode(make_tokenizer())).logits)
    assert len(rows) == len(TEXTS) and list(rows[0]) == config.group_names


def test_a_save_that_fails_part_way_leaves_the_folder_as_it_was(tmp_path, monkeypatch):
    first, second = tiny_model(ARTICLE_GROUPS, seed=1), tiny_model(ARTICLE_GROUPS, seed=2)
    first.save_pretrained(tmp_path / "model")
    before = {path.name: path.read_bytes() for path in (tmp_path / "model").iterdir()}

    def broken_save(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", broken_save)
    with pytest.raises(OSError, match="disk full"):
        second.save_pretrained(tmp_path / "model")
    monkeypatch.undo()
    after = {path.name: path.read_bytes() for path in (tmp_path / "model").iterdir()}
    assert after == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model"]  # no staging folder left behind
    inputs = encode(make_tokenizer())
    with torch.no_grad():
        reloaded = AutoModelForMultiGroupClassification.from_pretrained(tmp_path / "model").eval()
        assert torch.equal(reloaded(**inputs).logits, first.eval()(**inputs).logits)


def test_saving_over_an_older_sharded_save_removes_its_stale_shards(tmp_path):
    model = tiny_model(ARTICLE_GROUPS)
    model.save_pretrained(tmp_path, max_shard_size="20KB")
    assert len(list(tmp_path.glob("model-*-of-*.safetensors"))) > 1
    model.save_pretrained(tmp_path)
    assert sorted(path.name for path in tmp_path.glob("model*.safetensors*")) == ["model.safetensors"]
    AutoModelForMultiGroupClassification.from_pretrained(tmp_path)


class StopAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


def test_resumed_training_ends_with_the_same_weights(tmp_path):
    options = {"max_steps": 8, "lr": 1e-3, "save_strategy": "steps", "save_steps": 4}
    uninterrupted = make_trainer(tmp_path / "a", tiny_model(ARTICLE_GROUPS), **options)
    uninterrupted.train()

    interrupted = make_trainer(tmp_path / "b", tiny_model(ARTICLE_GROUPS), **options)
    interrupted.add_callback(StopAt(4))
    interrupted.train()
    checkpoint = tmp_path / "b" / "out" / "checkpoint-4"
    assert (checkpoint / "model.safetensors").is_file() and (checkpoint / "modeling_multigroup.py").is_file()
    resumed = make_trainer(tmp_path / "b", tiny_model(ARTICLE_GROUPS, seed=123), **options)
    resumed.train(resume_from_checkpoint=str(checkpoint))

    expected, got = uninterrupted.model.state_dict(), resumed.model.state_dict()
    assert resumed.state.global_step == 8
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-6, msg=name)
    shutil.rmtree(tmp_path)


@pytest.mark.parametrize("family", ["bert", "camembert"])
def test_a_model_saved_by_multigroup_0_2_with_its_head_named_head_loads_and_predicts_the_same(family, tmp_path):
    from safetensors.torch import load_file, save_file

    model = tiny_model(MIXED_GROUPS, family, loss_weighting="uncertainty")
    model.save_pretrained(tmp_path / "old")
    weights = tmp_path / "old" / "model.safetensors"
    old_names = {"classifier.hidden.": "head.dense.", "classifier.out.": "head.out_proj.", "classifier.": "head."}
    renamed = {}
    for key, value in load_file(weights).items():
        prefix = next((p for p in old_names if key.startswith(p)), None)
        renamed[old_names[prefix] + key[len(prefix) :] if prefix else key] = value
    assert {"head.dense.weight", "head.out_proj.bias", "head.log_vars"} <= set(renamed)
    save_file(renamed, weights, metadata={"format": "pt"})

    reloaded, info = AutoModelForMultiGroupClassification.from_pretrained(tmp_path / "old", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    inputs = encode(make_tokenizer(family))
    with torch.no_grad():
        assert torch.equal(model.eval()(**inputs).logits, reloaded.eval()(**inputs).logits)
    torch.testing.assert_close(reloaded.classifier.log_vars, model.classifier.log_vars)
    reloaded.save_pretrained(tmp_path / "new")  # saved again under today's names
    assert not [key for key in load_file(tmp_path / "new" / "model.safetensors") if key.startswith("head.")]


def test_id2label_names_every_column_and_is_derived_from_the_groups(tmp_path):
    import json

    model = tiny_model(MIXED_GROUPS)
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    names = ["score:bad", "score:ok", "score:good", "topics:food", "topics:service", "topics:price", "stars"]
    assert saved["id2label"] == {str(i): name for i, name in enumerate(names)}
    assert saved["label2id"] == {name: i for i, name in enumerate(names)}
    config = MultiGroupConfig.from_pretrained(tmp_path)
    assert config.num_labels == config.num_columns == model(**encode(make_tokenizer())).logits.shape[1] == 7
    for i, name in config.id2label.items():  # each column's name says its group and label
        group, _, label = name.partition(":")
        assert config.group_slices[group].start <= i < config.group_slices[group].stop
        assert label == (config.group(group)["labels"][i - config.group_slices[group].start] if label else "")
    saved["id2label"] = {"0": "LABEL_0", "1": "LABEL_1"}  # a stale or hand-edited copy is never read back
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert MultiGroupConfig.from_pretrained(tmp_path).id2label == config.id2label
