"""The combined loss of every group, and how the groups share the gradient that reaches the shared layers.

Batched over the groups: every group's columns are laid out padded to the widest group, (groups, width), so that
the loss and the balancer are a few tensor operations whatever the number of groups.

This file is remote code: `save_pretrained` copies it next to the weights, so it imports only the standard library,
torch and the other remote-code files.
"""

import functools

import torch
import torch.nn.functional as F
from torch import nn

from .configuration_multigroup import MultiGroupConfig
from .relations_multigroup import balance_weights
from .spec_multigroup import GROUP_TYPES, prior_offsets


class GroupLayout:
    """A config's groups as tensors: `index` (groups, width) names each group's columns, padded to the widest group
    by repeating its last column (`valid` marks the real ones); per group its type, loss weight, loss scale and the
    loss's denominator; per slot its class or positive weight (1 elsewhere). `positions` picks the real slots of
    the flattened (groups * width) layout, in column order."""

    @torch.inference_mode(False)  # normal tensors even when first made under inference mode: training saves them
    def __init__(self, config: MultiGroupConfig):
        # On the CPU even where models are built on the meta device; floats as float64 until `on` casts them.
        tensor = functools.partial(torch.tensor, device="cpu")
        real = functools.partial(torch.tensor, device="cpu", dtype=torch.float64)
        groups, slices = config.groups or [], list(config.group_slices.values())
        for group in groups:
            if group["type"] not in GROUP_TYPES:
                raise ValueError(
                    f"Group `{group['name']}` has unknown type {group['type']!r}; known types are "
                    f"{', '.join(GROUP_TYPES)}."
                )
        widths = [columns.stop - columns.start for columns in slices]
        width = max(widths, default=1)
        self.key = layout_key(config)
        self.names = [group["name"] for group in groups]
        self.index = tensor([[c.start + min(j, w - 1) for j in range(width)] for c, w in zip(slices, widths)])
        self.valid = tensor([[j < w for j in range(width)] for w in widths]).reshape(-1, width)
        self.positions = torch.nonzero(self.valid.flatten()).flatten()
        self.padded = width * len(widths) != config.num_columns
        self.kind = tensor([GROUP_TYPES.index(group["type"]) for group in groups])
        self.weight = real([float(group["weight"]) for group in groups])
        self.scale = real([float(group["loss_scale"]) for group in groups])
        # BCE and MSE are means over the group's columns too; the cross-entropy sums over them.
        self.denominator = real([1.0 if g["type"] == "multiclass" else float(w) for g, w in zip(groups, widths)])
        slot_weights = [group.get("class_weight") or group.get("pos_weight") or [] for group in groups]
        self.slot_weight = real([[float(x) for x in w] + [1.0] * (width - len(w)) for w in slot_weights])
        self.slot_weight = self.slot_weight.reshape(-1, width)
        self.divide = config.loss_weighting != "fixed"
        shares = balance_weights(groups, config.relations)  # the balancer's: related groups share one
        self.shares = tuple(share / (sum(shares) or 1.0) for share in shares)
        offsets = prior_offsets(groups)  # where each column's logit starts: its label's prior (None: at 0)
        self.offset = None if offsets is None else real(offsets)
        self._on = {}

    @torch.inference_mode(False)
    def on(self, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """The tensors on `device`, floating ones as `dtype` (made once per device and dtype)."""
        if (device, dtype) not in self._on:
            self._on[device, dtype] = {
                name: value.to(device, dtype if value.is_floating_point() else None)
                for name, value in vars(self).items()
                if isinstance(value, torch.Tensor)
            }
        return self._on[device, dtype]


def layout_key(config: MultiGroupConfig) -> tuple:
    """Every field a `GroupLayout` is made of: a layout is made again whenever one changes (`fit_loss_scales` sets
    `loss_scale` in place; a user may change a weight)."""
    return (config.loss_weighting, repr(config.relations)) + tuple(
        (group["name"], group["type"], len(group["labels"]), group["weight"], group["loss_scale"],
         tuple(group.get("class_weight") or group.get("pos_weight") or ()), tuple(group.get("prior") or ()))
        for group in config.groups or []
    )  # fmt: skip


def group_layout(config: MultiGroupConfig, cached: "GroupLayout | None" = None) -> GroupLayout:
    """The layout of `config`'s groups: `cached` (the caller's last one) while it still matches the config, else a
    new one. Each owner (a model's head) keeps its own: no state is shared between models or threads."""
    if cached is not None and cached.key == layout_key(config):
        return cached
    return GroupLayout(config)


def by_group(values: torch.Tensor, layout: dict[str, torch.Tensor]) -> torch.Tensor:
    """(rows, columns) -> (rows, groups, width), each group's columns padded as the layout says."""
    return values.index_select(1, layout["index"].flatten()).unflatten(1, layout["index"].shape)


def multi_group_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    config: MultiGroupConfig,
    log_vars: torch.Tensor | None = None,
    layout: GroupLayout | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The combined loss `sum_g weight_g * L_g` and the per-group losses `{name: L_g}`.

    `L_g` is group g's softmax cross-entropy (class-weighted), sigmoid BCE (pos-weighted) or MSE, a mean over the
    rows that carry the group: rows whose columns of group g hold `MISSING` (nan) are left out of `L_g`. A group
    missing from every row adds exactly 0 while keeping a gradient path to its columns (no nan, no unused
    parameters under DDP). The same few tensor operations compute every group's loss, whatever their number.
    `layout` is the caller's last `group_layout` (a model passes its head's); made from `config` when out of date.
    """
    if labels.dim() != 2 or labels.shape[1] != config.num_columns:
        raise ValueError(
            f"`labels` must have shape (batch_size, {config.num_columns}) for groups {config.group_names} (see "
            f"`config.encode_labels`), got {tuple(labels.shape)}."
        )
    if labels.dtype == torch.bool or labels.is_complex():
        raise TypeError(f"`labels` must be a float tensor (nan marks a missing group), got dtype {labels.dtype}.")
    if logits.shape != labels.shape:
        raise ValueError(
            f"`logits` must have the labels' shape (batch_size, {config.num_columns}), got {tuple(logits.shape)}: was "
            "the model built for other groups?"
        )
    layout = group_layout(config, layout)
    compute = torch.promote_types(logits.dtype, torch.float32)  # sums over rows overflow float16
    tensors = layout.on(logits.device, compute)
    labels = labels.to(device=logits.device, dtype=compute)
    missing = torch.isnan(labels)  # no `if missing.any()`: it would wait for the accelerator at every step
    labels = labels.masked_fill(missing, 0.0)
    present = ~by_group(missing, tensors).any(-1)  # (rows, groups)
    # Scores of rows without the group's labels are left out, as if those rows were not there (no nan comes back).
    scores = by_group(logits.to(compute), tensors).masked_fill(~present.unsqueeze(-1), 0.0)
    targets, valid = by_group(labels, tensors), tensors["valid"]
    targets = targets * valid  # padding slots repeat a real column: their targets are 0
    weight, kind = tensors["slot_weight"], tensors["kind"].unsqueeze(-1)
    log_probs = scores.masked_fill(~valid, float("-inf")).log_softmax(-1).masked_fill(~valid, 0.0)
    per_slot = torch.where(
        kind == 0,
        -weight * targets * log_probs,
        torch.where(
            kind == 1,
            F.binary_cross_entropy_with_logits(scores, targets, pos_weight=weight, reduction="none"),
            (scores - targets) ** 2,
        ),
    )
    row_losses = torch.where(present, (per_slot * valid).sum(-1) / tensors["denominator"], 0.0)
    counts = present.sum(0).to(compute)
    losses = row_losses.sum(0) / counts.clamp(min=1)
    terms = losses / tensors["scale"] if layout.divide else losses
    if log_vars is not None:  # learned uncertainty weighting (Kendall et al., 2018)
        terms = torch.exp(-log_vars) * terms + log_vars
    terms = tensors["weight"] * terms
    total = torch.where(counts > 0, terms, 0.0).sum().to(logits.dtype)  # a group absent from the batch adds 0
    group_losses = dict(zip(layout.names, losses.to(logits.dtype).unbind()))
    if not torch.isfinite(total):
        bad = [layout.names[i] for i in torch.nonzero(~torch.isfinite(losses)).flatten().tolist()]
        where = "the logits themselves are not finite" if not torch.isfinite(logits).all() else "the logits are finite"
        raise FloatingPointError(
            f"Non-finite loss from group(s) {bad or config.group_names} ({where}). Lower the learning rate, check "
            "those groups' labels (regression targets must be finite), or enable gradient clipping."
        )
    return total, group_losses


class _Balance(torch.autograd.Function):
    """Identity into one copy of the features per group, (groups, ...); backward rescales each group's gradient
    before the sum (`GradientBalancer.combine`)."""

    @staticmethod
    def forward(ctx, features, balancer):
        ctx.balancer = balancer
        return features.unsqueeze(0).expand(len(balancer.shares), *features.shape)

    @staticmethod
    def backward(ctx, grads):
        return ctx.balancer.combine(grads), None


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
        self.shares = tuple(weight / total for weight in weights)  # the head sets its layout's (`balance_weights`)
        self.momentum = momentum
        self.register_buffer("norms", torch.zeros(len(weights)))  # saved, so resumed training continues alike

    @torch.no_grad()
    def combine(self, grads: torch.Tensor) -> torch.Tensor:
        """The gradient into the shared features from each group's own, `grads` (groups, ...): each rescaled to its
        share of the running norms (which this updates), then summed."""
        norms, momentum = self.norms, self.momentum
        current = torch.linalg.vector_norm(grads.float(), dim=tuple(range(1, grads.dim())))
        seen = (current > 0) & torch.isfinite(current)  # a group missing from the batch sends no gradient
        norms.copy_(
            torch.where(seen, torch.where(norms > 0, momentum * norms + (1 - momentum) * current, current), norms)
        )
        # The groups in this batch share what their running norms add up to, in proportion to their weights.
        shares = torch.tensor(self.shares, device=norms.device)
        total = (norms * seen).sum() / (shares * seen).sum().clamp(min=1e-12)
        factors = torch.where(seen, shares * total / norms.clamp(min=1e-30), torch.ones_like(norms))
        return torch.tensordot(factors.to(grads.dtype), grads, dims=1)

    def expand(self, features: torch.Tensor) -> torch.Tensor:
        """(...) -> (groups, ...): every group's copy of the features, balanced in training."""
        if not (self.training and features.requires_grad):
            return features.unsqueeze(0).expand(len(self.shares), *features.shape)
        return _Balance.apply(features, self)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not (self.training and features.requires_grad):
            return (features,) * len(self.shares)
        return self.expand(features).unbind(0)
