import math

import pytest
import torch
import torch.nn.functional as F

from multigroup.modeling_multigroup import model_class, multi_group_loss

from conftest import ARTICLE_GROUPS, MIXED_GROUPS, TEXTS, TINY_FAMILIES, encode, make_tokenizer, tiny_model

ARTICLE_ROWS = [
    {"global_score": "S2", "emotions": ["E1", "E3"], "causes": []},
    {"global_score": "S5", "emotions": [], "causes": ["C4", "C12"]},
    {"global_score": "S1", "emotions": ["E11"], "causes": ["C1"]},
    {"global_score": "S3", "emotions": ["E2", "E5", "E8"], "causes": ["C7"]},
]


def hand_written_article_loss(logits, rows):
    """0.7 * CE + 4 * BCE + 4 * BCE, each term over the rows that carry the group, written without multigroup."""
    score_labels = ["S1", "S2", "S3", "S4", "S5"]
    emotions = ["E1", "E2", "E3", "E4", "E5", "E6", "E7", "E8", "E10", "E11"]
    causes = [f"C{i}" for i in range(1, 13)]
    total = 0.0
    keep = [i for i, row in enumerate(rows) if row.get("global_score") is not None]
    if keep:
        targets = torch.tensor([score_labels.index(rows[i]["global_score"]) for i in keep])
        total += 0.7 * F.cross_entropy(logits[keep, 0:5], targets)
    for name, labels, columns in [("emotions", emotions, slice(5, 15)), ("causes", causes, slice(15, 27))]:
        keep = [i for i, row in enumerate(rows) if row.get(name) is not None]
        if keep:
            multi_hot = torch.tensor([[float(label in rows[i][name]) for label in labels] for i in keep])
            total += 4.0 * F.binary_cross_entropy_with_logits(logits[keep, columns], multi_hot)
    return total


def article_batch(model, rows):
    labels = torch.tensor([model.config.encode_labels(row) for row in rows])
    return {**encode(make_tokenizer(), TEXTS[: len(rows)]), "labels": labels}


def test_combined_loss_equals_hand_written_torch():
    model = tiny_model(ARTICLE_GROUPS)
    out = model(**article_batch(model, ARTICLE_ROWS))
    torch.testing.assert_close(out.loss, hand_written_article_loss(out.logits, ARTICLE_ROWS))
    torch.testing.assert_close(
        out.group_losses["emotions"],
        F.binary_cross_entropy_with_logits(
            out.logits[:, 5:15],
            out.logits.new_tensor(
                [[float(e in row["emotions"]) for e in model.config.groups[1]["labels"]] for row in ARTICLE_ROWS]
            ),
        ),
    )


def test_combined_loss_with_a_group_missing_for_some_rows():
    rows = [dict(row) for row in ARTICLE_ROWS]
    rows[0]["global_score"] = None
    del rows[2]["causes"]
    model = tiny_model(ARTICLE_GROUPS)
    out = model(**article_batch(model, rows))
    torch.testing.assert_close(out.loss, hand_written_article_loss(out.logits, rows))


def test_group_missing_for_every_row_adds_zero_and_keeps_a_gradient_path():
    rows = [{**row, "global_score": None} for row in ARTICLE_ROWS]
    model = tiny_model(ARTICLE_GROUPS).train()
    model.config.hidden_dropout_prob = 0.0
    out = model(**article_batch(model, rows))
    assert out.group_losses["global_score"].item() == 0.0
    assert not math.isnan(out.loss.item())
    out.loss.backward()
    grad = model.classifier.out.weight.grad
    assert grad is not None and torch.all(grad[0:5] == 0) and grad[5:].abs().sum() > 0


@pytest.mark.parametrize("family", TINY_FAMILIES)
@pytest.mark.parametrize("kind", ["multiclass", "multilabel", "regression"])
def test_every_family_and_group_type(family, kind):
    groups = [group for group in MIXED_GROUPS if group["type"] == kind]
    model = tiny_model(groups, family, attn_implementation="eager")  # SDPA returns no attention weights
    assert isinstance(model, model_class(family))
    rows = {"multiclass": {"score": "good"}, "multilabel": {"topics": ["price"]}, "regression": {"stars": 4.5}}[kind]
    batch = encode(make_tokenizer(family))
    labels = torch.tensor([model.config.encode_labels(rows)] * len(TEXTS))
    out = model(**batch, labels=labels, output_hidden_states=True, output_attentions=True)
    width = model.config.num_columns
    assert out.logits.shape == (len(TEXTS), width)
    assert len(out.hidden_states) == 3 and len(out.attentions) == 2
    expected = {
        "multiclass": lambda: F.cross_entropy(out.logits, labels),
        "multilabel": lambda: F.binary_cross_entropy_with_logits(out.logits, labels),
        "regression": lambda: F.mse_loss(out.logits, labels),
    }[kind]()
    torch.testing.assert_close(out.loss, model.config.groups[0]["weight"] * expected)


def test_return_dict_false_gives_a_tuple_with_loss_first():
    model = tiny_model(ARTICLE_GROUPS)
    batch = article_batch(model, ARTICLE_ROWS)
    loss, logits, group_losses = model(**batch, return_dict=False)
    assert loss.dim() == 0 and logits.shape == (4, 27) and list(group_losses) == model.config.group_names


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int64])
def test_label_dtypes(dtype):
    model = tiny_model(ARTICLE_GROUPS)
    batch = article_batch(model, ARTICLE_ROWS)
    reference = model(**batch).loss
    batch["labels"] = batch["labels"].to(dtype)
    torch.testing.assert_close(model(**batch).loss, reference)


@pytest.mark.parametrize(
    "labels, error, match",
    [
        (torch.zeros(4, 26), ValueError, r"shape \(batch_size, 27\)"),
        (torch.zeros(4), ValueError, r"shape \(batch_size, 27\)"),
        (torch.zeros(4, 27, dtype=torch.bool), TypeError, "float tensor"),
    ],
)
def test_bad_label_tensors(labels, error, match):
    model = tiny_model(ARTICLE_GROUPS)
    with pytest.raises(error, match=match):
        model(**encode(make_tokenizer()), labels=labels)


def test_weight_scales_its_term_and_zero_weight_sends_no_gradient():
    model = tiny_model(MIXED_GROUPS)
    batch = encode(make_tokenizer())
    labels = torch.tensor([model.config.encode_labels({"score": "ok", "topics": ["food"], "stars": 1.0})] * 4)
    logits = model(**batch).logits.detach().requires_grad_()
    base, parts = multi_group_loss(logits, labels, model.config)
    model.config.groups[2]["weight"] = 0.0
    zeroed, _ = multi_group_loss(logits, labels, model.config)
    torch.testing.assert_close(base - zeroed, 2.0 * parts["stars"])
    zeroed.backward()
    assert torch.all(logits.grad[:, 6] == 0) and logits.grad[:, :6].abs().sum() > 0


def test_class_and_pos_weights_reach_the_loss():
    groups = [
        {"name": "score", "type": "multiclass", "labels": ["a", "b"], "class_weight": [1.0, 3.0]},
        {"name": "topics", "type": "multilabel", "labels": ["x", "y"], "pos_weight": [2.0, 0.5]},
    ]
    model = tiny_model(groups)
    logits = torch.randn(3, 4)
    labels = torch.tensor([[0.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 1.0]])
    _, parts = multi_group_loss(logits, labels, model.config)
    expected_ce = F.cross_entropy(logits[:, :2], labels[:, :2], weight=torch.tensor([1.0, 3.0]))
    expected_bce = F.binary_cross_entropy_with_logits(
        logits[:, 2:], labels[:, 2:], pos_weight=torch.tensor([2.0, 0.5])
    )
    torch.testing.assert_close(parts["score"], expected_ce)
    torch.testing.assert_close(parts["topics"], expected_bce)


def test_mean_pooling_ignores_padding():
    model = tiny_model(ARTICLE_GROUPS, pooling="mean")
    tokenizer = make_tokenizer()
    alone = model(**encode(tokenizer, ["i love it"])).logits
    padded = model(**encode(tokenizer, ["i love it", "slow rude staff and bad service"])).logits[:1]
    torch.testing.assert_close(alone, padded, atol=1e-5, rtol=1e-5)
