"""`loss_weighting="projected"`: before the balancer shares out the gradient into the shared features, each group's
gradient for a text loses its parts that point against the other groups' (PCGrad, Yu et al. 2020), checked against
PCGrad written out by hand, one text and one pair of groups at a time."""

import copy

import pytest
import torch
import torch.nn.functional as F

from multigroup import AutoModelForMultiGroupClassification, MultiGroupConfig
from multigroup.head_multigroup import GradientBalancer, multi_group_loss
from multigroup.hub_code.loss_multigroup import project_conflicts

from conftest import MIXED_GROUPS, TEXTS, encode, make_tokenizer, tiny_model


def reference_projection(grads: torch.Tensor) -> torch.Tensor:
    """PCGrad (Yu et al. 2020, Algorithm 1), text by text: each group's gradient, projected in turn (the other
    groups in their order) onto the normal plane of every other group's gradient it points against; a group
    without a gradient changes nothing."""
    out = grads.clone()
    for r in range(grads.shape[1]):
        vectors = [grads[g, r].flatten() for g in range(grads.shape[0])]
        for i in range(len(vectors)):
            projected = vectors[i].clone()
            for j, other in enumerate(vectors):
                if j != i and float(other @ other) > 0 and float(projected @ other) < 0:
                    projected -= (projected @ other) / (other @ other) * other
            out[i, r] = projected.reshape(grads[i, r].shape)
    return out


def conflicting_rows(grads: torch.Tensor) -> int:
    """How many texts have at least one pair of groups whose gradients conflict."""
    rows = grads.flatten(2).transpose(0, 1)
    return int(((rows @ rows.transpose(1, 2)) < 0).any(-1).any(-1).sum())


def test_two_groups_is_pcgrad():
    """Two groups: each conflicting gradient projected onto the other's normal plane (PCGrad), the rest as given;
    afterwards no pair points against the other."""
    torch.manual_seed(0)
    grads = torch.randn(2, 16, 8, dtype=torch.float64)
    assert 0 < conflicting_rows(grads) < 16  # both kinds of text are there
    got = project_conflicts(grads)
    for r in range(16):
        g1, g2 = grads[0, r], grads[1, r]
        if g1 @ g2 >= 0:
            torch.testing.assert_close(got[:, r], grads[:, r], rtol=0, atol=0)
        else:
            torch.testing.assert_close(got[0, r], g1 - (g1 @ g2) / (g2 @ g2) * g2)
            torch.testing.assert_close(got[1, r], g2 - (g1 @ g2) / (g1 @ g1) * g1)
            assert abs(float(got[0, r] @ g2)) < 1e-9 and abs(float(got[1, r] @ g1)) < 1e-9


def test_many_groups_token_features_and_absent_groups_against_the_reference():
    """Five groups, features per token (attention pooling's copies: groups, rows, tokens, hidden), and a group
    absent from some texts (zero gradient): it keeps zeros and takes nothing from the others."""
    torch.manual_seed(1)
    grads = torch.randn(5, 6, 3, 4, dtype=torch.float64)
    grads[2, :3] = 0.0
    got = project_conflicts(grads)
    torch.testing.assert_close(got, reference_projection(grads))
    assert torch.equal(got[2, :3], torch.zeros_like(got[2, :3]))
    alone = project_conflicts(grads[[0, 1, 3, 4], :3])  # the same texts without the absent group
    torch.testing.assert_close(got[[0, 1, 3, 4], :3], alone)
    assert conflicting_rows(grads) > 0 and not torch.allclose(got, grads)


def test_groups_that_point_alike_take_the_conflict_out_once():
    """Two groups that are one annotation at two grains point the same way; a third points against both. It loses
    its component along them once (then it no longer conflicts with the second), not once per group."""
    shared = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    third = torch.tensor([-1.0, 1.0, 0.0], dtype=torch.float64)
    grads = torch.stack([third, shared, 2 * shared]).unsqueeze(1)  # (groups, one text, features)
    got = project_conflicts(grads)
    torch.testing.assert_close(got[0, 0], torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    # each of the two loses its part along the third: (1, 0, 0) + (-1, 1, 0) / 2
    torch.testing.assert_close(got[1:, 0], torch.tensor([[0.5, 0.5, 0.0], [1.0, 1.0, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(got, reference_projection(grads))


def test_float32_gradients_come_back_in_their_dtype():
    torch.manual_seed(2)
    grads = torch.randn(3, 4, 5, dtype=torch.float32)
    got = project_conflicts(grads)
    assert got.dtype == torch.float32 and got.shape == grads.shape
    torch.testing.assert_close(got, reference_projection(grads.double()).float())


def test_the_projecting_balancer_shares_out_the_projected_gradients():
    """Same shares and running norms as the balancer given the projected gradients by hand."""
    torch.manual_seed(3)
    weights = [1.0, 2.0, 0.5]
    projecting, plain = GradientBalancer(weights, project=True).double(), GradientBalancer(weights).double()
    for _ in range(3):
        grads = torch.randn(3, 8, 6, dtype=torch.float64)
        torch.testing.assert_close(projecting.combine(grads), plain.combine(reference_projection(grads)))
        torch.testing.assert_close(projecting.norms, plain.norms)


class HandProjectedBalancer(GradientBalancer):
    """The balancer fed PCGrad's gradients written out by hand."""

    def combine(self, grads, text_dim=1):
        return super().combine(reference_projection(grads.movedim(text_dim, 1)).movedim(1, text_dim), text_dim)


@pytest.mark.parametrize(("pooling", "per_group_dense"), [("cls", True), ("mean", True), ("mean", False),
                                                          ("attention", True)])  # fmt: skip
def test_each_text_is_projected_alone(pooling, per_group_dense):
    """Whatever the head's layout, projection is text by text: a text that carries one group's labels gets exactly
    that group's gradient (rescaled, as balanced training gives it), nothing from the other texts' groups; a text
    without labels gets none."""
    model = tiny_model(MIXED_GROUPS, loss_weighting="projected", hidden_dropout_prob=0.0, pooling=pooling,
                       per_group_dense=per_group_dense)  # fmt: skip
    torch.manual_seed(4)
    states = torch.randn(4, 5, model.config.hidden_size, dtype=torch.float64)
    rows = [{"score": "ok", "topics": ["food"], "stars": 2.0}, {"score": "bad"}, {"topics": ["price"]}, {}]
    labels = torch.tensor([model.config.encode_labels(row) for row in rows], dtype=torch.float64)
    grads = {}
    for project in (True, False):
        head = copy.deepcopy(model.classifier).double().train()
        head.balancer.project = project
        hidden = states.clone().requires_grad_(True)
        logits = head(hidden, torch.ones(4, 5))
        multi_group_loss(logits, labels, model.config)[0].backward()
        grads[project] = hidden.grad.flatten(1)
    for text in (1, 2):  # one group each: the same direction as without projection
        cosine = F.cosine_similarity(grads[True][text], grads[False][text], dim=0)
        assert abs(float(cosine) - 1.0) < 1e-9, (pooling, text, float(cosine))
    assert torch.equal(grads[True][3], torch.zeros_like(grads[True][3]))


def test_a_whole_model_trains_with_the_projected_gradients(tmp_path):
    """The full model built with `loss_weighting="projected"`: its gradients equal those of the same model whose
    balancer is given the hand-projected gradients, and differ from balanced training; the forward pass is the
    balanced model's; the choice and the parameter names survive save and load."""
    model = tiny_model(MIXED_GROUPS, loss_weighting="projected", hidden_dropout_prob=0.0,
                       attention_probs_dropout_prob=0.0, pooling="mean").train()  # fmt: skip
    reference = copy.deepcopy(model)
    reference.classifier.balancer = HandProjectedBalancer([group["weight"] for group in model.config.groups])
    balanced = copy.deepcopy(model)
    balanced.config.loss_weighting = "balanced"
    balanced.classifier.balancer.project = False
    inputs = encode(make_tokenizer())
    rows = [{"score": "ok", "topics": ["food"], "stars": 2.0}, {"score": "bad", "topics": ["service"]},
            {"score": "good", "topics": []}, {"score": "ok", "stars": -1.0}]  # fmt: skip
    labels = torch.tensor([model.config.encode_labels(row) for row in rows[: len(TEXTS)]])
    for one in (model, reference, balanced):
        one(**inputs, labels=labels).loss.backward()
    want, plain = dict(reference.named_parameters()), dict(balanced.named_parameters())
    encoder_differs = False
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter.grad, want[name].grad, rtol=1e-4, atol=1e-6, msg=name)
        if not name.startswith("classifier"):
            encoder_differs |= not torch.allclose(parameter.grad, plain[name].grad, rtol=1e-4, atol=1e-6)
    assert encoder_differs  # the projection reached the encoder: these texts' groups conflict
    model.eval(), balanced.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, balanced(**inputs).logits, rtol=0, atol=0)
    model.save_pretrained(tmp_path)
    assert MultiGroupConfig.from_pretrained(tmp_path).loss_weighting == "projected"
    loaded = AutoModelForMultiGroupClassification.from_pretrained(tmp_path)
    assert loaded.classifier.balancer.project
    assert sorted(loaded.state_dict()) == sorted(balanced.state_dict())


def test_train_offers_every_weighting_the_config_accepts():
    """`multigroup train --loss-weighting` lists its choices without importing transformers (a quick --help); they
    are the config's."""
    import argparse

    from multigroup.commands import train
    from multigroup.hub_code.configuration_multigroup import LOSS_WEIGHTINGS

    parser = argparse.ArgumentParser()
    train.register(parser)
    (action,) = [action for action in parser._actions if action.dest == "loss_weighting"]
    assert action.choices == list(LOSS_WEIGHTINGS) and action.default == "balanced"
