"""`group_top_layer`: each group's own copy of the encoder's top layer, on every family whose layers are one list."""

import pytest
import torch
from safetensors.torch import load_file, save_file
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
    # balanced at the layer's input: the balancer saw the one labelled group's gradient there
    assert model.classifier.balancer.norms[1] > 0 and model.classifier.balancer.norms[[0, 2]].eq(0).all()


@pytest.mark.filterwarnings("ignore:`gradient_checkpointing_enable` is deprecated:FutureWarning")
def test_checkpointing_gives_the_same_loss_and_gradients_and_states_count_one_top_layer():
    inputs = _inputs("bert")
    model = tiny_model(MIXED_GROUPS, "bert", group_top_layer=True).train()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    labels = torch.tensor([model.config.encode_labels({"score": "ok", "topics": ["food"], "stars": 2.0})] * 4)
    grads = []
    for checkpointing in (None, {"use_reentrant": False}, {"use_reentrant": True}):  # reentrant: a no_grad first run
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=checkpointing)
        model.zero_grad()
        output = model(**inputs, labels=labels, output_hidden_states=True)
        output.loss.backward()
        grads.append([param.grad.clone() for param in model.parameters() if param.grad is not None])
        assert len(output.hidden_states) == model.config.num_hidden_layers + 1  # the copies are no extra layers
        assert output.hidden_states[-1].shape[0] == 3  # each group's states
    for checkpointed in grads[1:]:  # the balanced gradient into the shared layers too
        for without, with_ in zip(grads[0], checkpointed, strict=True):
            torch.testing.assert_close(with_, without)


def test_a_model_with_copies_pickles_and_copies_alike():
    import copy
    import pickle

    model = tiny_model(MIXED_GROUPS, "bert", group_top_layer=True)
    inputs = _inputs("bert")
    with torch.no_grad():
        expected = model(**inputs).logits
        for again in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
            top = again.base_model.encoder.layer[-1]
            assert type(top) is type(model.base_model.encoder.layer[-1]) and len(top.group_copies) == 2
            assert torch.equal(again(**inputs).logits, expected)
            assert again.get_submodule(again._group_top) is top
    # the copies read the model's config itself, not copies of it (a later change of attention reaches them)
    configs = {id(module.config) for module in top.modules() if hasattr(module, "config")}
    assert configs == {id(again.config)}


def test_one_group_and_a_layer_that_returns_a_tuple():
    from multigroup.hub_code.top_layer_multigroup import add_group_copies

    model = tiny_model(MIXED_GROUPS[:1], "bert", group_top_layer=True)
    with torch.no_grad():
        assert model.base_model(**_inputs("bert"))[0].shape[0] == 1 and model(**_inputs("bert")).logits.shape[1] == 3

    class WeightsFirst(torch.nn.Module):  # as DistilBERT's layers return under transformers 4
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 4)

        def forward(self, hidden_states, scale=1.0):
            return hidden_states.sum(-1), self.linear(hidden_states) * scale

    layer = WeightsFirst()
    add_group_copies(layer, 3, config=None)
    with torch.no_grad():
        layer.group_copies[1].linear.weight.add_(1.0)
        states = torch.randn(2, 5, 4, generator=torch.Generator().manual_seed(0))
        weights, stacked = layer(states, scale=2.0)
        assert torch.equal(weights, states.sum(-1)) and stacked.shape == (3, 2, 5, 4)
        assert torch.equal(stacked[0], layer.linear(states) * 2.0) and torch.equal(stacked[0], stacked[1])
        assert torch.equal(stacked[2], layer.group_copies[1].linear(states) * 2.0)


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


def _own(layer):
    return {name: value for name, value in layer.state_dict().items() if not name.startswith("group_copies.")}


def test_copies_given_to_a_saved_model_without_them_start_as_its_top_layer(tmp_path):
    tiny_model().save_pretrained(tmp_path / "without")
    model = AutoModelForMultiGroupClassification.from_pretrained(tmp_path / "without", group_top_layer=True)
    top = model.base_model.encoder.layer[-1]
    for copy in top.group_copies:
        assert copy.state_dict().keys() == _own(top).keys()
        assert all(torch.equal(value, _own(top)[name]) for name, value in copy.state_dict().items())
    # a copy whose weights a saved folder lacks starts as the top layer; the others keep theirs
    with torch.no_grad():
        for copy in top.group_copies:
            for param in copy.parameters():
                param.add_(1.0)
    model.save_pretrained(tmp_path / "with")
    weights = load_file(tmp_path / "with" / "model.safetensors")
    save_file({key: value for key, value in weights.items() if ".group_copies.0." not in key},
              tmp_path / "with" / "model.safetensors")  # fmt: skip
    again = AutoModelForMultiGroupClassification.from_pretrained(tmp_path / "with").base_model.encoder.layer[-1]
    assert all(torch.equal(value, _own(top)[name]) for name, value in again.group_copies[0].state_dict().items())
    kept = zip(again.group_copies[1].parameters(), top.group_copies[1].parameters(), strict=True)
    assert all(torch.equal(loaded, trained) for loaded, trained in kept)


def test_the_option_is_checked():
    with pytest.raises(ValueError, match="`group_top_layer` must be True or False"):
        MultiGroupConfig(groups=MIXED_GROUPS, group_top_layer=1)
    with pytest.raises(ValueError, match="`group_top_layer`: each group has features.*per_group_dense=True"):
        MultiGroupConfig(groups=MIXED_GROUPS, group_top_layer=True, per_group_dense=False)
    assert MultiGroupConfig.from_dict({"model_type": "multigroup", "groups": MIXED_GROUPS}).group_top_layer is False
