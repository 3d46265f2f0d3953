"""The batched loss, head and gradient balancer against the per-group loops they replaced (kept below as the
reference, as they were), over many random group layouts: same values, same gradients, same running norms."""

import copy
import random

import pytest
import torch
import torch.nn.functional as F

from multigroup import MultiGroupConfig
from multigroup.head_multigroup import GradientBalancer, MultiGroupHead, multi_group_loss

from conftest import MIXED_GROUPS, TEXTS, encode, make_tokenizer, tiny_model

# -- the reference: the per-group implementation as it was before batching ------------------------------------------


def reference_group_loss(kind: str, logits: torch.Tensor, target: torch.Tensor, group: dict) -> torch.Tensor:
    """One group's loss over rows that all carry the group: softmax CE, sigmoid BCE or MSE."""
    if kind == "multiclass":
        weight = torch.tensor(group["class_weight"], device=logits.device) if "class_weight" in group else None
        return F.cross_entropy(logits, target, weight=weight)
    if kind == "multilabel":
        pos_weight = torch.tensor(group["pos_weight"], device=logits.device) if "pos_weight" in group else None
        return F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)
    if kind == "regression":
        return F.mse_loss(logits, target)
    raise ValueError(
        f"Group `{group['name']}` has unknown type {kind!r}; known types are multiclass, multilabel, regression."
    )


def reference_multi_group_loss(logits, labels, config, log_vars=None):
    labels = labels.to(device=logits.device, dtype=logits.dtype)
    missing = torch.isnan(labels)
    any_missing = bool(missing.any())
    total = logits.new_zeros(())
    group_losses = {}
    for i, (group, columns) in enumerate(zip(config.groups, config.group_slices.values())):
        group_logits, target = logits[:, columns], labels[:, columns]
        if any_missing:
            present = ~missing[:, columns].any(dim=1)
            if not present.any():
                group_losses[group["name"]] = group_logits.sum() * 0.0
                total = total + group_losses[group["name"]]
                continue
            group_logits, target = group_logits[present], target[present]
        loss = reference_group_loss(group["type"], group_logits, target, group)
        group_losses[group["name"]] = loss
        term = loss / group["loss_scale"] if config.loss_weighting != "fixed" else loss
        if log_vars is not None:
            term = torch.exp(-log_vars[i]) * term + log_vars[i]
        total = total + group["weight"] * term
    if not torch.isfinite(total):
        bad = [name for name, value in group_losses.items() if not torch.isfinite(value)]
        raise FloatingPointError(f"Non-finite loss from group(s) {bad or config.group_names}")
    return total, group_losses


def reference_scaled(parameter, multiplier):
    return parameter if multiplier == 1 else parameter + (multiplier - 1) * parameter.detach()


class _ReferenceBalance(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features, norms, shares, momentum):
        ctx.norms, ctx.shares, ctx.momentum = norms, shares, momentum
        return tuple(features.clone() for _ in shares)

    @staticmethod
    def backward(ctx, *grads):
        norms, momentum = ctx.norms, ctx.momentum
        current = torch.stack([torch.linalg.vector_norm(grad.float()) for grad in grads])
        seen = (current > 0) & torch.isfinite(current)
        norms.copy_(
            torch.where(seen, torch.where(norms > 0, momentum * norms + (1 - momentum) * current, current), norms)
        )
        shares = torch.tensor(ctx.shares, device=norms.device)
        total = (norms * seen).sum() / (shares * seen).sum().clamp(min=1e-12)
        factors = torch.where(seen, shares * total / norms.clamp(min=1e-30), torch.ones_like(norms))
        return sum(grad * factor.to(grad.dtype) for grad, factor in zip(grads, factors)), None, None, None


class ReferenceGradientBalancer(torch.nn.Module):
    def __init__(self, weights, momentum=0.9):
        super().__init__()
        total = sum(weights) or 1.0
        self.shares = tuple(weight / total for weight in weights)
        self.momentum = momentum
        self.register_buffer("norms", torch.zeros(len(weights)))

    def forward(self, features):
        if not (self.training and features.requires_grad):
            return (features,) * len(self.shares)
        return _ReferenceBalance.apply(features, self.norms, self.shares, self.momentum)


def reference_head_forward(head, balancer, hidden_states, attention_mask, config):
    """MultiGroupHead.forward as it was, on `head`'s parameters and modules, with the reference `balancer` (None
    without balancing)."""
    slices = list(config.group_slices.values())
    if head.pooling == "mean":
        mask = (
            torch.ones(hidden_states.shape[:2], device=hidden_states.device)
            if attention_mask is None
            else attention_mask
        )
        mask = mask.unsqueeze(-1).to(hidden_states.dtype)
        pooled = (hidden_states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    else:
        pooled = hidden_states[:, 0]
    x = head.dropout(pooled)
    dense_weight, dense_bias = (
        reference_scaled(head.hidden.weight, head.multiplier),
        reference_scaled(head.hidden.bias, head.multiplier),
    )
    weight, bias = reference_scaled(head.out.weight, head.multiplier), reference_scaled(head.out.bias, head.multiplier)
    if not head.per_group_dense:
        x = head.dropout(torch.tanh(F.linear(x, dense_weight, dense_bias)))
        if not (balancer is not None and head.training):
            return F.linear(x, weight, bias)
    copies = balancer(x) if balancer is not None else (x,) * len(slices)
    logits = []
    for i, (features, columns) in enumerate(zip(copies, slices)):
        if head.per_group_dense:
            rows = slice(i * head.hidden_size, (i + 1) * head.hidden_size)
            features = head.dropout(torch.tanh(F.linear(features, dense_weight[rows], dense_bias[rows])))
        logits.append(F.linear(features, weight[columns], bias[columns]))
    return torch.cat(logits, dim=-1)


# -- random layouts -----------------------------------------------------------------------------------------------

HIDDEN = 8
TYPES = ("multiclass", "multilabel", "regression")


def exact(value: float) -> float:
    """A value that float32 holds exactly: the reference makes float32 tensors of the class and positive weights."""
    return round(value * 64) / 64


def random_groups(rng: random.Random) -> list[dict]:
    count = rng.choice([1, 2, 3, 5, 8, 13])
    shape = rng.random()
    uniform = rng.randint(2, 5) if shape < 0.2 else None  # every classification group as wide
    only = rng.choice(TYPES[:2]) if 0.2 <= shape < 0.35 else None  # one type only
    groups = []
    for i in range(count):
        kind = only or rng.choice(TYPES)
        group = {"name": f"g{i}", "type": kind}
        if kind != "regression":
            width = uniform or rng.randint(2 if kind == "multiclass" else 1, 6)
            group["labels"] = [f"l{j}" for j in range(width)]
        if rng.random() < 0.6:
            group["weight"] = rng.choice([0.0, rng.uniform(0.1, 5.0)]) if rng.random() < 0.2 else rng.uniform(0.1, 5)
        if rng.random() < 0.4:
            group["loss_scale"] = rng.uniform(0.1, 3.0)
        if kind == "multiclass" and rng.random() < 0.4:
            group["class_weight"] = [exact(rng.uniform(0.2, 4.0)) for _ in group["labels"]]
        if kind == "multilabel" and rng.random() < 0.4:
            group["pos_weight"] = [exact(rng.uniform(0.2, 6.0)) for _ in group["labels"]]
        groups.append(group)
    return groups


def random_config(rng: random.Random, **overrides) -> MultiGroupConfig:
    options = dict(
        loss_weighting=rng.choice(["fixed", "normalized", "balanced", "uncertainty"]),
        per_group_dense=rng.random() < 0.5,
        head_multiplier=rng.choice([1.0, 30.0, 3.5]),
        pooling=rng.choice(["cls", "mean"]),
    )
    options.update(overrides)
    return MultiGroupConfig(
        groups=random_groups(rng), hidden_size=HIDDEN, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=8, hidden_dropout_prob=0.0, **options,
    )  # fmt: skip


def random_labels(rng: random.Random, config: MultiGroupConfig, rows: int, dtype=torch.float64) -> torch.Tensor:
    """One-hot, multi-hot or real targets; with some groups missing from some rows, and some from every row."""
    generator = torch.Generator().manual_seed(rng.randint(0, 2**31))
    labels = torch.zeros(rows, config.num_columns, dtype=dtype)
    missing_rate = rng.choice([0.0, 0.0, 0.3, 0.6])
    for group, columns in zip(config.groups, config.group_slices.values()):
        width = columns.stop - columns.start
        if group["type"] == "multiclass":
            labels[:, columns] = F.one_hot(torch.randint(width, (rows,), generator=generator), width).to(dtype)
        elif group["type"] == "multilabel":
            labels[:, columns] = (torch.rand(rows, width, generator=generator) < 0.4).to(dtype)
        else:
            labels[:, columns] = 3 * torch.randn(rows, 1, generator=generator, dtype=dtype)
        if missing_rate and rng.random() < 0.15:
            labels[:, columns] = float("nan")  # missing from every row
        elif missing_rate:
            labels[torch.rand(rows, generator=generator) < missing_rate, columns] = float("nan")
    return labels


def losses_and_gradients(function, logits, labels, config, log_vars):
    logits = logits.detach().clone().requires_grad_()
    log_vars = None if log_vars is None else log_vars.detach().clone().requires_grad_()
    total, parts = function(logits, labels, config, log_vars)
    (total + sum(0.1 * (i + 1) * part for i, part in enumerate(parts.values()))).backward()
    grads = [logits.grad, None if log_vars is None else log_vars.grad]
    return total.detach(), {name: part.detach() for name, part in parts.items()}, grads


def assert_same(got, want, **tolerance):
    if want is None:  # the reference never reached it: no gradient is a zero gradient
        assert got is None or not got.any()
    else:  # each element within a small fraction of the tensor's largest, as rounding leaves it
        atol = tolerance["atol"] * max(1.0, float(want.abs().max()))
        torch.testing.assert_close(got, want, rtol=tolerance["rtol"], atol=atol)


TOLERANCE = {torch.float64: dict(rtol=1e-9, atol=1e-11), torch.float32: dict(rtol=1e-4, atol=2e-6)}
# The balancer takes each group's gradient norm in float32 (as the reference did), so gradients through it agree to
# float32 rounding whatever the dtype.
HEAD_TOLERANCE = {torch.float64: dict(rtol=1e-6, atol=1e-6), torch.float32: TOLERANCE[torch.float32]}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_batched_loss_equals_the_per_group_loss_on_random_specs(dtype):
    rng = random.Random(0 if dtype == torch.float64 else 1)
    for _ in range(250):
        config = random_config(rng)
        rows = rng.choice([1, 2, 5, 16])
        labels = random_labels(rng, config, rows, dtype)
        generator = torch.Generator().manual_seed(rng.randint(0, 2**31))
        logits = 3 * torch.randn(rows, config.num_columns, generator=generator, dtype=dtype)
        log_vars = None
        if config.loss_weighting == "uncertainty":
            log_vars = torch.randn(len(config.groups), generator=generator, dtype=dtype)
        got = losses_and_gradients(multi_group_loss, logits, labels, config, log_vars)
        want = losses_and_gradients(reference_multi_group_loss, logits, labels, config, log_vars)
        tolerance = TOLERANCE[dtype]
        torch.testing.assert_close(got[0], want[0], **tolerance)
        assert list(got[1]) == list(want[1]) == config.group_names
        for name in config.group_names:
            torch.testing.assert_close(got[1][name], want[1][name], **tolerance, msg=name)
        for got_grad, want_grad in zip(got[2], want[2]):
            assert_same(got_grad, want_grad, **tolerance)


def test_a_group_missing_from_every_row_adds_zero_and_keeps_a_zero_gradient():
    config = MultiGroupConfig(groups=MIXED_GROUPS, loss_weighting="uncertainty")
    labels = torch.tensor([config.encode_labels({"score": "ok", "stars": 2.0}), config.encode_labels({"stars": 1.0})])
    logits = torch.randn(2, config.num_columns, requires_grad=True)
    log_vars = torch.zeros(3, requires_grad=True)
    total, parts = multi_group_loss(logits, labels, config, log_vars)
    total.backward()
    assert parts["topics"] == 0 and parts["topics"].requires_grad
    assert not logits.grad[:, config.group_slices["topics"]].any() and log_vars.grad[1] == 0
    want, _ = reference_multi_group_loss(logits, labels, config, log_vars)
    torch.testing.assert_close(total, want)


def test_non_finite_losses_name_their_groups():
    config = MultiGroupConfig(groups=MIXED_GROUPS)
    labels = torch.tensor([config.encode_labels({"score": "ok", "topics": ["food"], "stars": 2.0})] * 2)
    logits = torch.zeros(2, config.num_columns)
    logits[0, 0] = float("inf")
    with pytest.raises(FloatingPointError, match=r"group\(s\) \['score'\] \(the logits themselves are not finite\)"):
        multi_group_loss(logits, labels, config)
    labels[1, -1] = float("inf")
    with pytest.raises(FloatingPointError, match=r"group\(s\) \['stars'\] \(the logits are finite\)"):
        multi_group_loss(torch.zeros(2, config.num_columns), labels, config)


def test_the_loss_follows_a_spec_changed_in_place():
    """`fit_loss_scales` sets `loss_scale` in place and a user may change a weight: the cached layout follows."""
    config = MultiGroupConfig(groups=MIXED_GROUPS, loss_weighting="normalized")
    labels = torch.tensor([config.encode_labels({"score": "ok", "topics": ["food"], "stars": 2.0})] * 3)
    logits = torch.randn(3, config.num_columns)
    before, _ = multi_group_loss(logits, labels, config)
    config.groups[2]["loss_scale"] = 4.0
    config.groups[0]["weight"] = 3.0
    torch.testing.assert_close(multi_group_loss(logits, labels, config)[0], reference_multi_group_loss(
        logits, labels, config)[0])  # fmt: skip
    assert multi_group_loss(logits, labels, config)[0] != before


# -- the head and the balancer --------------------------------------------------------------------------------------


def head_pair(config: MultiGroupConfig, seed: int, dtype=torch.float64):
    """The batched head and a copy of it for the reference, with a reference balancer on the same running norms."""
    torch.manual_seed(seed)
    head = MultiGroupHead(config).to(dtype)
    for parameter in head.parameters():  # away from the init, so that every path carries a real value
        torch.nn.init.normal_(parameter, std=0.5 / head.multiplier)
    reference = copy.deepcopy(head)
    balancer = None
    if hasattr(reference, "balancer"):
        balancer = ReferenceGradientBalancer([group["weight"] for group in config.groups])
        balancer.norms = reference.balancer.norms
        reference.balancer = balancer  # so that train() and eval() reach it
    return head, reference, balancer


def run_steps(rng, config, head, reference, balancer, dtype, steps=3, use_loss=True):
    """A few training steps with both heads: logits, gradients w.r.t. the features and the parameters, norms."""
    for step in range(steps):
        rows, length = rng.choice([1, 3, 6]), rng.choice([1, 4])
        generator = torch.Generator().manual_seed(rng.randint(0, 2**31))
        states = torch.randn(rows, length, HIDDEN, generator=generator, dtype=dtype)
        mask = (torch.rand(rows, length, generator=generator) < 0.8).to(torch.long)
        mask[:, 0] = 1
        labels = random_labels(rng, config, rows, dtype)
        cotangent = torch.randn(rows, config.num_columns, generator=generator, dtype=dtype)
        for columns in config.group_slices.values():  # some groups send no gradient (missing from the batch)
            if rng.random() < 0.2:
                cotangent[:, columns] = 0
        results = []
        for model, forward in ((head, lambda s: head(s, mask)), (reference, lambda s: reference_head_forward(
                reference, balancer, s, mask, config))):  # fmt: skip
            model.zero_grad(set_to_none=True)
            inputs = states.clone().requires_grad_()
            logits = forward(inputs)
            if use_loss:
                loss, _ = reference_multi_group_loss(logits, labels, config, getattr(model, "log_vars", None))
            else:
                loss = (logits * cotangent).sum()
            loss.backward()
            grads = {name: p.grad for name, p in model.named_parameters()}
            results.append((logits.detach(), inputs.grad, grads))
        (logits, features, grads), (want_logits, want_features, want_grads) = results
        tolerance = HEAD_TOLERANCE[dtype]
        assert_same(logits, want_logits, **tolerance)
        assert_same(features, want_features, **tolerance)
        assert set(grads) == set(want_grads)
        for name, grad in grads.items():
            assert_same(grad, want_grads[name], **tolerance)
        if balancer is not None:
            torch.testing.assert_close(head.balancer.norms, balancer.norms, **tolerance)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_batched_head_equals_the_per_group_head_in_training(dtype):
    rng = random.Random(2 if dtype == torch.float64 else 3)
    for seed in range(120):
        config = random_config(rng, loss_weighting=rng.choice(["balanced", "balanced", "fixed", "uncertainty"]))
        head, reference, balancer = head_pair(config, seed, dtype)
        head.train(), reference.train()
        run_steps(rng, config, head, reference, balancer, dtype, use_loss=seed % 2 == 0)


def test_batched_head_equals_the_per_group_head_in_eval_and_without_gradients():
    rng = random.Random(4)
    for seed in range(60):
        config = random_config(rng)
        head, reference, balancer = head_pair(config, seed)
        head.eval(), reference.eval()
        states = torch.randn(4, 3, HIDDEN, dtype=torch.float64)
        with torch.no_grad():
            torch.testing.assert_close(
                head(states, None), reference_head_forward(reference, balancer, states, None, config)
            )
        run_steps(rng, config, head, reference, balancer, torch.float64, steps=1)
        head.train(), reference.train()
        with torch.no_grad():
            torch.testing.assert_close(
                head(states, None), reference_head_forward(reference, balancer, states, None, config)
            )


def test_balancer_copies_equal_the_reference_balancer():
    """The tuple of copies (`GradientBalancer.forward`) and the batched copies (`.expand`) against the reference."""
    rng = random.Random(5)
    for seed in range(50):
        weights = [rng.choice([0.0, rng.uniform(0.1, 4.0)]) for _ in range(rng.randint(1, 9))]
        batched, reference = GradientBalancer(weights).double().train(), ReferenceGradientBalancer(weights).double()
        for step in range(4):
            generator = torch.Generator().manual_seed(seed * 10 + step)
            features = torch.randn(rng.randint(1, 5), 6, generator=generator, dtype=torch.float64)
            scales = [rng.choice([0.0, 10 ** rng.uniform(-3, 3)]) for _ in weights]
            targets = [torch.randn(features.shape, generator=generator, dtype=torch.float64) for _ in weights]
            grads = []
            for run in ("tuple", "expand", "reference"):
                inputs = features.clone().requires_grad_()
                if run == "expand":
                    copies = batched.expand(inputs).unbind(0)
                else:
                    copies = (batched if run == "tuple" else reference)(inputs)
                sum(scale * (copy * target).sum() for scale, copy, target in zip(scales, copies, targets)).backward()
                grads.append(inputs.grad)
                if run == "tuple":  # the expand run starts from the same running norms
                    norms = batched.norms.clone()
                    batched.norms.copy_(reference.norms)
            # Both sides take the gradients' norms in float32, summed in another order.
            tolerance = dict(rtol=1e-5, atol=1e-6 * float(grads[2].abs().max()))
            torch.testing.assert_close(grads[0], grads[2], **tolerance)
            torch.testing.assert_close(grads[1], grads[2], **tolerance)
            tolerance = dict(rtol=1e-5, atol=1e-9)
            torch.testing.assert_close(norms, reference.norms, **tolerance)
            torch.testing.assert_close(batched.norms, reference.norms, **tolerance)


def test_checkpoints_keep_their_parameter_names_and_shapes():
    for per_group_dense, weighting, extra in ((True, "balanced", "balancer.norms"), (False, "uncertainty", "log_vars"),
                                              (True, "fixed", None)):  # fmt: skip
        config = MultiGroupConfig(
            groups=MIXED_GROUPS, hidden_size=HIDDEN, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8,
            per_group_dense=per_group_dense, loss_weighting=weighting,
        )  # fmt: skip
        shapes = {name: tuple(value.shape) for name, value in MultiGroupHead(config).state_dict().items()}
        width = HIDDEN * (3 if per_group_dense else 1)
        want = {"hidden.weight": (width, HIDDEN), "hidden.bias": (width,), "out.weight": (7, HIDDEN), "out.bias": (7,)}
        if extra:
            want[extra] = (3,)
        assert shapes == want


def test_a_whole_model_trains_alike_with_the_batched_head():
    """The full model (encoder + batched head + batched loss) against the same model run through the reference."""
    model = tiny_model(MIXED_GROUPS, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0).train()
    reference = copy.deepcopy(model)
    balancer = ReferenceGradientBalancer([group["weight"] for group in model.config.groups])
    balancer.norms = reference.classifier.balancer.norms
    reference.classifier.balancer = balancer
    inputs = encode(make_tokenizer())
    rows = [{"score": "ok", "topics": ["food"], "stars": 2.0}, {"score": "bad"}, {"topics": []}, {"stars": -1.0}]
    labels = torch.tensor([model.config.encode_labels(row) for row in rows[: len(TEXTS)]])
    for _ in range(2):
        model.zero_grad(), reference.zero_grad()
        output = model(**inputs, labels=labels)
        output.loss.backward()
        states = reference.roberta(**inputs).last_hidden_state
        logits = reference_head_forward(
            reference.classifier, balancer, states, inputs["attention_mask"], reference.config
        )
        loss, parts = reference_multi_group_loss(logits, labels, reference.config)
        loss.backward()
        torch.testing.assert_close(output.loss, loss)
        for name in parts:
            torch.testing.assert_close(output.group_losses[name], parts[name])
        want = dict(reference.named_parameters())
        for name, parameter in model.named_parameters():
            torch.testing.assert_close(parameter.grad, want[name].grad, rtol=1e-4, atol=1e-6, msg=name)
        torch.testing.assert_close(model.classifier.balancer.norms, balancer.norms)


# -- edge cases found in review -----------------------------------------------------------------------------------


def test_half_precision_sums_do_not_overflow():
    """float16 logits: the per-group sums run in float32, as `mse_loss`'s mean does (512 rows of 144 would be inf)."""
    config = MultiGroupConfig(groups=[{"name": "r", "type": "regression"}], loss_weighting="fixed")
    logits, labels = torch.full((512, 1), 12.0, dtype=torch.float16), torch.zeros(512, 1)
    total, parts = multi_group_loss(logits, labels, config)
    want, _ = reference_multi_group_loss(logits, labels, config)
    assert total.dtype == parts["r"].dtype == torch.float16 and total == want == 144


def test_a_layout_first_made_under_inference_mode_still_trains():
    config = MultiGroupConfig(groups=[{"name": "a", "type": "multiclass", "labels": ["x", "y", "z"]},
                                      {"name": "r", "type": "regression"}], loss_weighting="normalized")  # fmt: skip
    labels = torch.tensor([config.encode_labels({"a": "x", "r": 1.0})] * 2)
    with torch.inference_mode():
        multi_group_loss(torch.randn(2, 4), labels, config)
    logits = torch.randn(2, 4, requires_grad=True)
    multi_group_loss(logits, labels, config)[0].backward()
    assert torch.isfinite(logits.grad).all()


def test_scores_of_rows_without_the_groups_labels_send_no_gradient_even_when_nan():
    config = MultiGroupConfig(groups=[{"name": "a", "type": "multiclass", "labels": ["x", "y", "z"]},
                                      {"name": "r", "type": "regression"}])  # fmt: skip
    labels = torch.tensor([config.encode_labels({"r": 1.0}), config.encode_labels({"a": "y", "r": 0.0})])
    logits = torch.zeros(2, 4)
    logits[0, :3] = float("nan")  # row 0 has no label for `a`
    logits.requires_grad_()
    total, _ = multi_group_loss(logits, labels, config)
    total.backward()
    finite = logits.detach().nan_to_num()
    torch.testing.assert_close(total, reference_multi_group_loss(finite, labels, config)[0])
    assert torch.isfinite(logits.grad).all() and not logits.grad[0, :3].any()


def test_logits_of_another_width_are_named():
    config = MultiGroupConfig(groups=MIXED_GROUPS)
    labels = torch.zeros(2, config.num_columns)
    with pytest.raises(ValueError, match=r"`logits` must have the labels' shape \(batch_size, 7\), got \(2, 8\)"):
        multi_group_loss(torch.zeros(2, config.num_columns + 1), labels, config)


def test_per_sample_gradients_through_the_multiplied_head():
    """torch.func (vmap over grad, as per-sample gradient tools use it) runs through the head's multiplier."""
    from torch.func import functional_call, grad, vmap

    config = random_config(random.Random(0), loss_weighting="fixed", head_multiplier=30.0, per_group_dense=True)
    head = MultiGroupHead(config).double().eval()  # float64: vmap's and the loop's sums round alike to 1e-7
    params = {name: value.detach() for name, value in head.named_parameters()}
    states = torch.randn(3, 2, HIDDEN, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def output(p, state):
        return functional_call(head, p, (state[None], None)).sum()

    per_sample = vmap(grad(output), in_dims=(None, 0))(params, states)
    for i in range(3):
        one = grad(output)(params, states[i])
        for name in params:
            torch.testing.assert_close(per_sample[name][i], one[name])
