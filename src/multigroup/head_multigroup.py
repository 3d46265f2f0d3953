"""The multi-group head (pooling, a dense layer per group, the columns) and the combined loss.

This file is remote code: `save_pretrained` copies it next to the weights, so it imports only the standard library,
torch and the other remote-code files.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .configuration_multigroup import MultiGroupConfig


def group_loss(kind: str, logits: torch.Tensor, target: torch.Tensor, group: dict) -> torch.Tensor:
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


def multi_group_loss(
    logits: torch.Tensor, labels: torch.Tensor, config: MultiGroupConfig, log_vars: torch.Tensor | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The combined loss `sum_g weight_g * L_g` and the per-group losses `{name: L_g}`.

    Rows whose columns of group g hold `MISSING` (nan) are left out of `L_g`. A group missing from every row adds
    exactly 0 while keeping a gradient path to its columns (no nan, no unused parameters under DDP).
    """
    if labels.dim() != 2 or labels.shape[1] != config.num_columns:
        raise ValueError(
            f"`labels` must have shape (batch_size, {config.num_columns}) for groups {config.group_names} (see "
            f"`config.encode_labels`), got {tuple(labels.shape)}."
        )
    if labels.dtype == torch.bool or labels.is_complex():
        raise TypeError(f"`labels` must be a float tensor (nan marks a missing group), got dtype {labels.dtype}.")
    labels = labels.to(device=logits.device, dtype=logits.dtype)
    missing = torch.isnan(labels)
    any_missing = bool(missing.any())  # one check per batch: without missing labels, no per-group masking
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
        loss = group_loss(group["type"], group_logits, target, group)
        group_losses[group["name"]] = loss
        term = loss / group["loss_scale"] if config.loss_weighting != "fixed" else loss
        if log_vars is not None:  # learned uncertainty weighting (Kendall et al., 2018)
            term = torch.exp(-log_vars[i]) * term + log_vars[i]
        total = total + group["weight"] * term
    if not torch.isfinite(total):
        bad = [name for name, value in group_losses.items() if not torch.isfinite(value)]
        where = "the logits themselves are not finite" if not torch.isfinite(logits).all() else "the logits are finite"
        raise FloatingPointError(
            f"Non-finite loss from group(s) {bad or config.group_names} ({where}). Lower the learning rate, check "
            "those groups' labels (regression targets must be finite), or enable gradient clipping."
        )
    return total, group_losses


def scaled(parameter: torch.Tensor, multiplier: float) -> torch.Tensor:
    """`multiplier * parameter` whose gradient reaches `parameter` unscaled, so that Adam(W) moves the product
    `multiplier` times faster than the optimizer's learning rate, while gradient clipping sees the usual norm."""
    return parameter if multiplier == 1 else parameter + (multiplier - 1) * parameter.detach()


class _Balance(torch.autograd.Function):
    """Identity into one copy of the features per group; backward rescales each copy's gradient before the sum."""

    @staticmethod
    def forward(ctx, features, norms, shares, momentum):
        ctx.norms, ctx.shares, ctx.momentum = norms, shares, momentum
        return tuple(features.clone() for _ in shares)

    @staticmethod
    def backward(ctx, *grads):
        norms, momentum = ctx.norms, ctx.momentum
        current = torch.stack([torch.linalg.vector_norm(grad.float()) for grad in grads])
        seen = (current > 0) & torch.isfinite(current)  # a group missing from the batch sends no gradient
        norms.copy_(
            torch.where(seen, torch.where(norms > 0, momentum * norms + (1 - momentum) * current, current), norms)
        )
        # The groups in this batch share what their running norms add up to, in proportion to their weights.
        shares = torch.tensor(ctx.shares, device=norms.device)
        total = (norms * seen).sum() / (shares * seen).sum().clamp(min=1e-12)
        factors = torch.where(seen, shares * total / norms.clamp(min=1e-30), torch.ones_like(norms))
        return sum(grad * factor.to(grad.dtype) for grad, factor in zip(grads, factors)), None, None, None


class GradientBalancer(nn.Module):
    """Gives each group the same share (times its `weight`) of the gradient that reaches the shared layers.

    Each group reads the shared features through a copy of its own; in backward, each copy's gradient is rescaled
    so that its running norm is the group's share of the running total. A large multilabel group (whose loss is a
    mean over many columns) and a small easy group then pull on the encoder alike, whatever their losses' scales,
    with no extra backward pass. Only training steps are affected; the forward function never changes.
    """

    def __init__(self, weights: list[float], momentum: float = 0.9):
        super().__init__()
        total = sum(weights) or 1.0
        self.shares = tuple(weight / total for weight in weights)
        self.momentum = momentum
        self.register_buffer("norms", torch.zeros(len(weights)))  # saved, so resumed training continues alike

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not (self.training and features.requires_grad):
            return (features,) * len(self.shares)
        return _Balance.apply(features, self.norms, self.shares, self.momentum)


class MultiGroupHead(nn.Module):
    """Pooling, then dense + tanh + dropout (a dense layer per group, or one for all), then each group's columns.

    The head's parameters are stored divided by `config.head_multiplier` and multiplied back in `forward`: the same
    function, but any optimizer moves the new head that many times faster than the pretrained encoder.
    """

    def __init__(self, config: MultiGroupConfig):
        super().__init__()
        config.require_groups()
        # The families name their dropout differently (DistilBERT: `dropout`; ModernBERT: `classifier_dropout`).
        names = ("classifier_dropout", "hidden_dropout_prob", "dropout")
        dropout = next((p for p in (getattr(config, name, None) for name in names) if p is not None), 0.1)
        self.pooling = config.pooling
        self.multiplier = config.head_multiplier
        self.per_group_dense, self.hidden_size = config.per_group_dense, config.hidden_size
        width = config.hidden_size * (len(config.groups) if config.per_group_dense else 1)
        # Named unlike any family's own classification head, so that a fine-tuned `...ForSequenceClassification`
        # checkpoint's head is never loaded into this one.
        self.hidden = nn.Linear(config.hidden_size, width)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(config.hidden_size, config.num_columns)
        self.slices = list(config.group_slices.values())
        if config.loss_weighting == "balanced":
            self.balancer = GradientBalancer([group["weight"] for group in config.groups])
        if config.loss_weighting == "uncertainty":
            self.log_vars = nn.Parameter(torch.zeros(len(config.groups)))

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        if self.pooling == "mean":
            mask = (
                torch.ones(hidden_states.shape[:2], device=hidden_states.device)
                if attention_mask is None
                else attention_mask
            )
            mask = mask.unsqueeze(-1).to(hidden_states.dtype)
            pooled = (hidden_states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        else:
            pooled = hidden_states[:, 0]
        x = self.dropout(pooled)
        dense_weight, dense_bias = (
            scaled(self.hidden.weight, self.multiplier),
            scaled(self.hidden.bias, self.multiplier),
        )
        weight, bias = scaled(self.out.weight, self.multiplier), scaled(self.out.bias, self.multiplier)
        if not self.per_group_dense:
            x = self.dropout(torch.tanh(F.linear(x, dense_weight, dense_bias)))
            if not (hasattr(self, "balancer") and self.training):
                return F.linear(x, weight, bias)
        copies = self.balancer(x) if hasattr(self, "balancer") else (x,) * len(self.slices)
        logits = []
        for i, (features, columns) in enumerate(zip(copies, self.slices)):
            if self.per_group_dense:  # rows i*hidden:(i+1)*hidden of the dense layer are group i's own
                rows = slice(i * self.hidden_size, (i + 1) * self.hidden_size)
                features = self.dropout(torch.tanh(F.linear(features, dense_weight[rows], dense_bias[rows])))
            logits.append(F.linear(features, weight[columns], bias[columns]))
        return torch.cat(logits, dim=-1)
