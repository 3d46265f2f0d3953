"""`group_top_layer`: each group's own copy of the encoder's top layer, on every family whose layers are one list."""

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoModel

from helpers import FAMILIES, save_plain, tokenizer_for
from multigroup import AutoModelForMultiGroupClassification, MultiGroupConfig

from conftest import MIXED_GROUPS, TEXTS, encode, make_tokenizer, run_python, tiny_model

LISTED = [family for family in FAMILIES if family != "albert"]  # ALBERT shares one layer between all


def _inputs(family):
    inputs = encode(tokenizer_for(family), TEXTS)
    return {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}


@pytest.mark.parametrize("family", LISTED)
def test_every_group_starts_with_the_checkpoints_top_layer(family, tmp_path):
    save_plain(family, AutoModel, tmp_path)
    model, info = AutoModelForMultiGroupClassification.from_pretrained(
        tmp_path, groups=MIXED_GROUPS, group_top_layer=True, output_loading_info=True
    )
    plain = AutoModel.from_pretrained(tmp_path).eval()
    inputs = _inputs(family)
    with torch.no_grad():
        states = model.eval().base_model(**inputs)[0]
        expected = plain(**inputs)[0]
    assert states.shape == (3, *expected.shape)  # (groups, batch, sequence, hidden)
    for group_states in states:  # the top layer for the first group, an equal copy for each other
        torch.testing.assert_close(group_states, expected, rtol=0, atol=1e-6)
    # the copies are new weights of the head, never reported as a checkpoint's missing ones
    assert any(".group_copies.1." in key for key in info["missing_keys"])
    assert all(key.startswith("classifier.") or ".group_copies." in key for key in info["missing_keys"])
    logits = model(**inputs).logits
    assert logits.shape == (len(TEXTS), model.config.num_columns) and torch.isfinite(logits).all()


def test_albert_is_refused_with_the_reason(tmp_path):
    save_plain("albert", AutoModel, tmp_path)
    with pytest.raises(ValueError, match="ALBERT shares one layer"):
        AutoModelForMultiGroupClassification.from_pretrained(tmp_path, groups=MIXED_GROUPS, group_top_layer=True)


def test_each_group_trains_only_its_own_top_layer():
    model = tiny_model(MIXED_GROUPS, "bert", group_top_layer=True).train()
    inputs = _inputs("bert")
    config = model.config
    # only `topics` (the second group) is labelled: only its copy of the top layer gets a gradient
    labels = torch.tensor([config.encode_labels({"topics": ["food"]})] * len(TEXTS))
    model(**inputs, labels=labels).loss.backward()
    top = model.base_model.encoder.layer[-1]
    own = [param for name, param in top.named_parameters() if not name.startswith("group_copies.")]

    def moved(params):
        return any(param.grad is not None and param.grad.abs().sum() > 0 for param in params)

    assert moved(top.group_copies[0].parameters())  # topics'
    assert not moved(own) and not moved(top.group_copies[1].parameters())  # score's (the layer itself), stars'
    assert moved(model.base_model.encoder.layer[0].parameters())  # the shared layers
    assert len(own) == len(list(top.group_copies[0].parameters()))


@pytest.mark.parametrize("pooling", ["cls", "mean", "attention"])
def test_each_pooling_reads_each_groups_own_states(pooling):
    """The head pools group g's states for group g: its logits are those of a model without copies whose encoder
    output is group g's states."""
    model = tiny_model(MIXED_GROUPS, "bert", group_top_layer=True, pooling=pooling)
    with torch.no_grad():
        top = model.base_model.encoder.layer[-1]
        for copy in top.group_copies:  # each group's copy different
            for param in copy.parameters():
                param.add_(torch.randn(param.shape, generator=torch.Generator().manual_seed(param.numel())) * 0.1)
        inputs = _inputs("bert")
        states = model.base_model(**inputs)[0]
        logits = model(**inputs).logits
        for g, columns in enumerate(model.config.group_slices.values()):
            alone = model.classifier(states[g], inputs["attention_mask"])
            torch.testing.assert_close(logits[:, columns], alone[:, columns], rtol=0, atol=1e-6)
    assert not torch.allclose(states[0], states[1])


@pytest.mark.parametrize("options", [{"group_top_layer": True}, {"pooling": "attention"}], ids=["top", "attention"])
def test_a_saved_model_loads_and_predicts_the_same_without_multigroup(options, tmp_path):
    """Bit for bit: both read each group's own features, through a batched matmul that rounds by where the weights
    lie in memory (loading gives the head's weights memory of their own)."""
    model = tiny_model(**options)  # the article's three groups, CamemBERT
    model.save_pretrained(tmp_path / "model")
    again = AutoModelForMultiGroupClassification.from_pretrained(tmp_path / "model").eval()
    inputs = encode(make_tokenizer(), TEXTS)
    with torch.no_grad():
        logits = model(**inputs).logits
        assert torch.equal(again(**inputs).logits, logits)
    save_file({**inputs, "logits": logits.contiguous()}, tmp_path / "reference.safetensors")
    code = (
        "import torch\nfrom safetensors.torch import load_file\nfrom transformers import AutoModel\n"
        "ref = load_file('reference.safetensors')\n"
        "model = AutoModel.from_pretrained('model', trust_remote_code=True).eval()\n"
        "inputs = {k: v for k, v in ref.items() if k != 'logits'}\n"
        "with torch.no_grad():\n"
        "    print('EQUAL', torch.equal(model(**inputs).logits, ref['logits']))\n"
    )
    completed = run_python(code, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "EQUAL True" in completed.stdout


def test_copies_given_to_a_saved_model_without_them_start_as_its_top_layer(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    model = AutoModelForMultiGroupClassification.from_pretrained(tmp_path, group_top_layer=True)
    top = model.base_model.encoder.layer[-1]
    for copy in top.group_copies:
        for (name, mine), theirs in zip(top.named_parameters(), copy.parameters(), strict=False):
            assert torch.equal(mine, theirs), name


def test_the_option_is_checked():
    with pytest.raises(ValueError, match="`group_top_layer` must be True or False"):
        MultiGroupConfig(groups=MIXED_GROUPS, group_top_layer=1)
    with pytest.raises(ValueError, match="`group_top_layer` gives each group its own features.*per_group_dense=True"):
        MultiGroupConfig(groups=MIXED_GROUPS, group_top_layer=True, per_group_dense=False)
    assert MultiGroupConfig.from_dict({"model_type": "multigroup", "groups": MIXED_GROUPS}).group_top_layer is False
