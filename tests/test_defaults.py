"""The defaults a plain Trainer relies on: the head multiplier, gradient balancing, pooling from the checkpoint."""

import json
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel

from multigroup import AutoModelForMultiGroupClassification, MultiGroupConfig
from multigroup.head_multigroup import GradientBalancer

from conftest import ARTICLE_GROUPS, MIXED_GROUPS, TEXTS, WORDS, encode, make_tokenizer, tiny_model

FIXTURE = Path(__file__).parent / "fixtures" / "config_multigroup_0.1.0.json"


def reference_head(head, config, hidden_states, attention_mask, multiplier):
    """The head written out: mean or CLS pooling, dense + tanh (one per group, or one shared), then each group's
    columns; every weight times `multiplier`."""
    if head.pooling == "mean":
        mask = attention_mask.unsqueeze(-1).float()
        pooled = (hidden_states * mask).sum(1) / mask.sum(1)
    elif head.pooling == "attention":  # each group's softmax over the text's tokens of token . its query
        scores = torch.einsum("bth,gh->gbt", hidden_states, multiplier * head.queries)
        weights = scores.masked_fill(attention_mask[None] == 0, float("-inf")).softmax(-1)
        pooled = torch.einsum("gbt,bth->gbh", weights, hidden_states)
    else:
        pooled = hidden_states[:, 0]
    dense_w, dense_b = multiplier * head.hidden.weight, multiplier * head.hidden.bias
    out_w, out_b = multiplier * head.out.weight, multiplier * head.out.bias
    hidden, logits = config.hidden_size, []
    for i, columns in enumerate(config.group_slices.values()):
        rows = slice(i * hidden, (i + 1) * hidden) if config.per_group_dense else slice(0, hidden)
        x = torch.tanh((pooled[i] if head.pooling == "attention" else pooled) @ dense_w[rows].T + dense_b[rows])
        logits.append(x @ out_w[columns].T + out_b[columns])
    return torch.cat(logits, dim=-1)


def test_the_multiplier_keeps_the_function_at_initialisation():
    inputs = encode(make_tokenizer())
    with torch.no_grad():
        plain = tiny_model(ARTICLE_GROUPS, head_multiplier=1.0)(**inputs).logits
        scaled = tiny_model(ARTICLE_GROUPS, head_multiplier=30.0)(**inputs).logits
    torch.testing.assert_close(scaled, plain, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("per_group_dense", [True, False])
@pytest.mark.parametrize("multiplier", [1.0, 30.0])
def test_the_head_computes_its_weights_times_the_multiplier(multiplier, per_group_dense):
    model = tiny_model(MIXED_GROUPS, head_multiplier=multiplier, per_group_dense=per_group_dense)
    assert model.classifier.hidden.weight.shape[0] == 32 * (3 if per_group_dense else 1)
    inputs = encode(make_tokenizer())
    with torch.no_grad():
        hidden = model.roberta(**inputs).last_hidden_state
        expected = reference_head(model.classifier, model.config, hidden, inputs["attention_mask"], multiplier)
        torch.testing.assert_close(model(**inputs).logits, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("multiplier", [1.0, 30.0])
def test_attention_pooling_is_each_groups_weighted_mean_of_its_tokens(multiplier):
    model = tiny_model(MIXED_GROUPS, head_multiplier=multiplier, pooling="attention")
    inputs = encode(make_tokenizer())  # texts of different lengths: padding must get no weight
    with torch.no_grad():
        zero = model(**inputs).logits
        scale = multiplier * 32**0.5  # scores of about unit spread: weights neither uniform nor one-hot
        model.classifier.queries.copy_(
            torch.randn(model.classifier.queries.shape, generator=torch.Generator().manual_seed(0)) / scale
        )
        hidden = model.roberta(**inputs).last_hidden_state
        expected = reference_head(model.classifier, model.config, hidden, inputs["attention_mask"], multiplier)
        torch.testing.assert_close(model(**inputs).logits, expected, rtol=1e-5, atol=1e-5)
        model.config.pooling = model.classifier.pooling = "mean"  # queries at 0: every token weighs alike
        torch.testing.assert_close(zero, model(**inputs).logits, rtol=1e-5, atol=1e-6)


def test_attention_pooling_trains_with_balanced_groups_each_reading_its_own_copy_of_the_tokens():
    model = tiny_model(MIXED_GROUPS, pooling="attention", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    with torch.no_grad():
        model.classifier.queries.normal_(std=1 / (60 * 32**0.5), generator=torch.Generator().manual_seed(0))
    inputs, labels = encode(make_tokenizer()), torch.tensor([[1.0, 0, 0, 1, 0, 1, 2.0]] * len(TEXTS))
    with torch.no_grad():
        expected = model(**inputs).logits
    output = model.train()(**inputs, labels=labels)
    torch.testing.assert_close(output.logits, expected, rtol=1e-5, atol=1e-6)  # balancing changes gradients only
    output.loss.backward()
    grad = model.classifier.queries.grad
    assert grad is not None and torch.isfinite(grad).all() and (grad.abs().sum(-1) > 0).all()  # every group's query
    assert (model.classifier.balancer.norms > 0).all()  # each group's gradient came through its own copy


def test_attention_pooling_starts_at_the_mean_from_a_checkpoint_and_needs_a_dense_layer_per_group(encoder_folder):
    model = AutoModelForMultiGroupClassification.from_pretrained(
        encoder_folder, groups=MIXED_GROUPS, pooling="attention"
    )
    assert model.classifier.queries.shape == (3, 32) and not model.classifier.queries.any()
    assert all(torch.isfinite(parameter).all() for parameter in model.parameters())
    with pytest.raises(ValueError, match="pass per_group_dense=True"):
        MultiGroupConfig(groups=MIXED_GROUPS, pooling="attention", per_group_dense=False)
    config = MultiGroupConfig(pooling="attention", per_group_dense=False)  # groups given later, as PEFT does
    config.groups = MIXED_GROUPS
    with pytest.raises(ValueError, match="pass per_group_dense=True"):
        AutoModelForMultiGroupClassification.from_config(config)


def test_the_head_moves_multiplier_times_faster_while_clipping_sees_the_usual_gradient():
    inputs, labels = encode(make_tokenizer()), torch.tensor([[1.0, 0, 0, 1, 0, 1, 2.0]] * len(TEXTS))
    grads, moves = {}, {}
    for multiplier in (1.0, 30.0):
        model = tiny_model(MIXED_GROUPS, head_multiplier=multiplier, loss_weighting="fixed").train()
        model.config.hidden_dropout_prob = model.config.attention_probs_dropout_prob = 0.0
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        before = model.classifier.out.weight.detach() * multiplier
        model(**inputs, labels=labels).loss.backward()
        grads[multiplier] = model.classifier.out.weight.grad.clone()
        torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0).step()
        moves[multiplier] = (model.classifier.out.weight.detach() * multiplier - before).abs().max()
    torch.testing.assert_close(grads[30.0], grads[1.0], rtol=1e-4, atol=1e-7)  # the gradient dL/dW itself
    assert moves[1.0] == pytest.approx(1e-3, rel=1e-2) and moves[30.0] == pytest.approx(30e-3, rel=1e-2)


def test_a_0_1_0_config_loads_without_multiplier_and_predicts_as_0_1_0():
    config = MultiGroupConfig.from_pretrained(FIXTURE)
    assert config.head_multiplier == 1.0 and not config.per_group_dense and config.loss_weighting == "normalized"
    torch.manual_seed(0)
    model = AutoModelForMultiGroupClassification.from_config(config).eval()
    inputs = encode(make_tokenizer())
    with torch.no_grad():
        hidden = model.roberta(**inputs).last_hidden_state
        expected = reference_head(model.classifier, config, hidden, inputs["attention_mask"], 1.0)
        torch.testing.assert_close(model(**inputs).logits, expected, rtol=1e-5, atol=1e-5)


def test_new_configs_default_to_balancing_and_the_multiplier():
    config = MultiGroupConfig(groups=MIXED_GROUPS)
    assert config.loss_weighting == "balanced" and config.head_multiplier == 120.0 and config.per_group_dense
    reloaded = MultiGroupConfig.from_dict(config.to_dict())
    assert reloaded.loss_weighting == "balanced" and reloaded.head_multiplier == 120.0 and reloaded.per_group_dense
    with pytest.raises(ValueError, match="`head_multiplier` must be a finite number > 0"):
        MultiGroupConfig(groups=MIXED_GROUPS, head_multiplier=0)


def test_a_saved_head_keeps_its_multiplier_and_refuses_another(tmp_path):
    """A saved head's weights are stored divided by its multiplier: another one would scale its logits."""
    model = tiny_model(MIXED_GROUPS, head_multiplier=30.0).eval()
    model.save_pretrained(tmp_path)
    assert MultiGroupConfig.from_pretrained(tmp_path, head_multiplier=30.0).head_multiplier == 30.0  # the same: fine
    with pytest.raises(ValueError, match=r"stored for `head_multiplier` 30.0; another one \(120\)"):
        AutoModelForMultiGroupClassification.from_pretrained(tmp_path, head_multiplier=120)
    with pytest.raises(ValueError, match=r"stored for `head_multiplier` 30.0; another one \(120.0\)"):
        AutoModelForMultiGroupClassification.from_pretrained(tmp_path, config=MultiGroupConfig(groups=MIXED_GROUPS))
    assert MultiGroupConfig.from_pretrained(FIXTURE, head_multiplier=1.0).head_multiplier == 1.0  # 0.1.0: none
    with pytest.raises(ValueError, match=r"stored for `head_multiplier` 1.0; another one \(60\)"):
        MultiGroupConfig.from_pretrained(FIXTURE, head_multiplier=60)
    inputs = encode(make_tokenizer())
    with torch.no_grad():
        reloaded = AutoModelForMultiGroupClassification.from_pretrained(tmp_path).eval()
        torch.testing.assert_close(reloaded(**inputs).logits, model(**inputs).logits, rtol=0, atol=0)


def test_a_dense_layer_per_group_up_to_32_groups_then_one_shared():
    def groups(count):
        return [{"name": f"g{i}", "type": "multilabel", "labels": ["a", "b"]} for i in range(count)]

    assert MultiGroupConfig(groups=groups(32)).per_group_dense is True
    many = MultiGroupConfig(groups=groups(33))
    assert many.per_group_dense is False and MultiGroupConfig.from_dict(many.to_dict()).per_group_dense is False
    assert MultiGroupConfig(groups=groups(40), per_group_dense=True).per_group_dense is True
    assert MultiGroupConfig(groups=groups(2), per_group_dense=False).per_group_dense is False
    # Groups given after the config was made: the head takes the default and stores it, so the weights reload.
    later = MultiGroupConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8)
    assert later.per_group_dense is None
    later.groups = groups(33)
    later.validate_groups()
    model = AutoModelForMultiGroupClassification.from_config(later)
    assert later.per_group_dense is False and model.classifier.hidden.weight.shape == (8, 8)


def test_balancer_gives_each_group_its_share_of_the_gradient():
    balancer = GradientBalancer([1.0, 3.0]).train()
    features = torch.randn(5, 4, requires_grad=True)
    big, small = balancer(features)
    (1000 * big.sum() + 0.001 * (small**2).sum()).backward()
    g_big, g_small = torch.full((5, 4), 1000.0), 0.002 * features.detach()
    total = g_big.norm() + g_small.norm()  # first step: the running norms are this step's norms
    expected = 0.25 * total * g_big / g_big.norm() + 0.75 * total * g_small / g_small.norm()
    torch.testing.assert_close(features.grad, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(balancer.norms, torch.stack([g_big.norm(), g_small.norm()]))


def test_balancer_leaves_a_missing_group_and_the_forward_function_alone():
    balancer = GradientBalancer([1.0, 1.0]).train()
    features = torch.randn(3, 2, requires_grad=True)
    present, missing = balancer(features)
    assert torch.equal(present, features) and torch.equal(missing, features)
    (present.sum() + 0.0 * missing.sum()).backward()
    # The missing group sends no gradient: the present one keeps its own norm, and no running norm is invented.
    torch.testing.assert_close(features.grad, torch.ones(3, 2))
    assert balancer.norms[1] == 0
    balancer.eval()
    assert all(copy is features for copy in balancer(features))


def test_balanced_model_trains_and_saves_its_running_norms(tmp_path):
    model = tiny_model(ARTICLE_GROUPS).train()
    labels = torch.tensor([MultiGroupConfig.encode_labels(model.config, {"global_score": "S2", "emotions": ["E1"],
                                                                         "causes": []})] * len(TEXTS))  # fmt: skip
    model(**encode(make_tokenizer()), labels=labels).loss.backward()
    assert (model.classifier.balancer.norms > 0).all()
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForMultiGroupClassification.from_pretrained(tmp_path)
    assert torch.equal(reloaded.classifier.balancer.norms, model.classifier.balancer.norms)


@pytest.fixture
def encoder_folder(tmp_path):
    config = BertConfig(vocab_size=len(WORDS) + 5, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=34)  # fmt: skip
    BertModel(config).save_pretrained(tmp_path)
    return tmp_path


@pytest.mark.parametrize("mean, cls, expected", [(True, False, "mean"), (False, True, "cls"), (None, None, "cls")])
def test_pooling_comes_from_a_sentence_transformers_checkpoint(encoder_folder, mean, cls, expected):
    if mean is not None:
        (encoder_folder / "1_Pooling").mkdir()
        modes = {"pooling_mode_mean_tokens": mean, "pooling_mode_cls_token": cls}
        (encoder_folder / "1_Pooling" / "config.json").write_text(json.dumps(modes))
    model = AutoModelForMultiGroupClassification.from_pretrained(encoder_folder, groups=MIXED_GROUPS)
    assert model.config.pooling == expected and model.config.head_multiplier == 120.0
    explicit = AutoModelForMultiGroupClassification.from_pretrained(encoder_folder, groups=MIXED_GROUPS, pooling="cls")
    assert explicit.config.pooling == "cls"


def test_an_explicit_head_learning_rate_keeps_its_meaning_under_the_multiplier():
    from multigroup.training import build_optimizer

    for multiplier in (1.0, 30.0):
        model = tiny_model(MIXED_GROUPS, head_multiplier=multiplier)
        body, head = build_optimizer(model, 1e-4, head_learning_rate=3e-3).param_groups
        # The stored head parameters move at rate / multiplier, so the head's weights move at 3e-3 either way.
        assert body["lr"] == 1e-4 and head["lr"] * multiplier == pytest.approx(3e-3)
        assert {id(p) for p in head["params"]} == {id(p) for p in model.classifier.parameters()}
        default_body, default_head = build_optimizer(model, 1e-4).param_groups
        assert default_head["lr"] == default_body["lr"] == 1e-4
