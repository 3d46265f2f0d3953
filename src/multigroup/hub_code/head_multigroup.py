"""The multi-group head (pooling, a dense layer per group, the columns) and the combined loss.

Both are batched over the groups: every group's columns are laid out padded to the widest group, (groups, width),
so that the loss, the per-group dense layers and the balancer are a few tensor operations whatever the number of
groups.

This file is remote code: `save_pretrained` copies it next to the weights, so it imports only the standard library,
torch and the other remote-code files.
"""

import functools

import torch
import torch.nn.functional as F
from torch import nn

from .configuration_multigroup import PER_GROUP_DENSE_UP_TO, MultiGroupConfig
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


_LAYOUTS: dict[tuple, GroupLayout] = {}


def group_layout(config: MultiGroupConfig) -> GroupLayout:
    """The layout of `config`'s groups, made again whenever a field it holds changes (`fit_loss_scales` sets
    `loss_scale` in place; a user may change a weight)."""
    key = (config.loss_weighting,) + tuple(
        (group["name"], group["type"], len(group["labels"]), group["weight"], group["loss_scale"],
         tuple(group.get("class_weight") or group.get("pos_weight") or ()), tuple(group.get("prior") or ()))
        for group in config.groups or []
    )  # fmt: skip
    layout = _LAYOUTS.get(key)
    if layout is None:  # kept in a local: another thread may clear the cache meanwhile
        layout = GroupLayout(config)
        if len(_LAYOUTS) >= 64:
            _LAYOUTS.clear()
        _LAYOUTS[key] = layout
    return layout


def by_group(values: torch.Tensor, layout: dict[str, torch.Tensor]) -> torch.Tensor:
    """(rows, columns) -> (rows, groups, width), each group's columns padded as the layout says."""
    return values.index_select(1, layout["index"].flatten()).unflatten(1, layout["index"].shape)


def multi_group_loss(
    logits: torch.Tensor, labels: torch.Tensor, config: MultiGroupConfig, log_vars: torch.Tensor | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The combined loss `sum_g weight_g * L_g` and the per-group losses `{name: L_g}`.

    `L_g` is group g's softmax cross-entropy (class-weighted), sigmoid BCE (pos-weighted) or MSE, a mean over the
    rows that carry the group: rows whose columns of group g hold `MISSING` (nan) are left out of `L_g`. A group
    missing from every row adds exactly 0 while keeping a gradient path to its columns (no nan, no unused
    parameters under DDP). The same few tensor operations compute every group's loss, whatever their number.
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
    layout = group_layout(config)
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


class _TimesValue(torch.autograd.Function):
    """`x * multiplier` whose gradient passes through unscaled."""

    generate_vmap_rule = True  # torch.func (vmap, per-sample gradients) too

    @staticmethod
    def forward(x, multiplier):
        return x * multiplier

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class _TimesGradient(torch.autograd.Function):
    """The identity, whose gradient is multiplied by `multiplier`."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, multiplier):
        return x.view_as(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.multiplier = inputs[1]

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.multiplier, None


def multiplied(layer, features: torch.Tensor, multiplier: float) -> torch.Tensor:
    """`layer(features)` computed with its parameters times `multiplier`, `layer` being affine in them (`x W^T +
    b`), their gradients left unscaled: Adam(W) then moves the product `multiplier` times faster than the
    optimizer's learning rate, while gradient clipping sees the usual norm. The product is never formed: the
    output is multiplied, and the gradient into the features, so a head of hundreds of dense layers costs no
    operation over its weights."""
    if multiplier == 1:
        return layer(features)
    if not torch.is_grad_enabled():
        return layer(features) * multiplier
    return _TimesValue.apply(layer(_TimesGradient.apply(features, multiplier)), multiplier)


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
        self.shares = tuple(weight / total for weight in weights)
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


class MultiGroupHead(nn.Module):
    """Pooling, then dense + tanh + dropout (a dense layer per group, or one for all), then each group's columns.

    The head's parameters are stored divided by `config.head_multiplier` and multiplied back in `forward`: the same
    function, but any optimizer moves the new head that many times faster than the pretrained encoder. Groups with
    a `prior` add its logits (`prior_offsets`, a constant) to their columns, so a new head starts at the training
    data's label frequencies.

    Group i's dense layer is rows `i*hidden:(i+1)*hidden` of `hidden`, its columns its rows of `out`; all groups
    run as one matmul (one batched matmul where each group reads its own features).
    """

    def __init__(self, config: MultiGroupConfig):
        super().__init__()
        config.require_groups()
        # The families name their dropout differently (DistilBERT: `dropout`; ModernBERT: `classifier_dropout`).
        names = ("classifier_dropout", "hidden_dropout_prob", "dropout")
        dropout = next((p for p in (getattr(config, name, None) for name in names) if p is not None), 0.1)
        self.pooling = config.pooling
        self.multiplier = config.head_multiplier
        self.num_groups = len(config.groups)
        if config.per_group_dense is None:  # groups given after the config was made: its default, stored
            config.per_group_dense = self.num_groups <= PER_GROUP_DENSE_UP_TO
        self.per_group_dense, self.hidden_size = config.per_group_dense, config.hidden_size
        width = config.hidden_size * (self.num_groups if config.per_group_dense else 1)
        # Named unlike any family's own classification head, so that a fine-tuned `...ForSequenceClassification`
        # checkpoint's head is never loaded into this one.
        self.hidden = nn.Linear(config.hidden_size, width)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(config.hidden_size, config.num_columns)
        self.config = config  # the model's own: priors set after the head was built reach it through the layout
        if config.loss_weighting == "balanced":
            self.balancer = GradientBalancer([group["weight"] for group in config.groups])
        if config.loss_weighting == "uncertainty":
            self.log_vars = nn.Parameter(torch.zeros(len(config.groups)))

    @property
    def layout(self) -> GroupLayout:
        return group_layout(self.config)

    def _dense(self, x: torch.Tensor) -> torch.Tensor:
        """The features (hidden, batch), or each group's own copy (groups, hidden, batch) -> each group's dense
        layer before tanh, (groups, hidden, batch): laid out so that the weight's gradient comes out in its own
        layout (at hundreds of groups it is far larger than the activations)."""
        weight, bias = self.hidden.weight, self.hidden.bias
        if x.dim() == 2:  # one matmul for every group; as `nn.Linear` runs it, whose results do not depend on where
            # the weights lie in memory (a save and load gives the same logits bit for bit)
            dense = multiplied(self.hidden, x.t(), self.multiplier)
            return dense.t().unflatten(0, (self.num_groups, self.hidden_size))
        weight, bias = weight.unflatten(0, (self.num_groups, -1)), bias.view(self.num_groups, -1, 1)
        return multiplied(lambda f: torch.baddbmm(bias, weight, f), x, self.multiplier)

    def _columns(self, x: torch.Tensor, layout: GroupLayout) -> torch.Tensor:
        """Each group's features (groups, hidden, batch) -> the logits (batch, columns), each group through its own
        rows of `out` (padded to the widest group)."""
        padded, layout = layout.padded, layout.on(x.device, x.dtype)
        index, shape = layout["index"].flatten(), (*layout["index"].shape, -1)
        weight, bias = self.out.weight.index_select(0, index).view(shape), self.out.bias.index_select(0, index)
        logits = multiplied(lambda f: torch.baddbmm(bias.view(shape), weight, f), x, self.multiplier)
        logits = logits.flatten(0, 1).t()  # (batch, groups * width)
        return logits.index_select(1, layout["positions"]) if padded else logits.contiguous()

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        layout = self.layout
        logits = self._logits(hidden_states, attention_mask, layout)
        if layout.offset is None:  # no priors (models saved before them): the logits as they were, bit for bit
            return logits
        return logits + layout.on(logits.device, logits.dtype)["offset"]

    def _logits(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None, layout) -> torch.Tensor:
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
        balancer = getattr(self, "balancer", None)
        balancing = balancer is not None and balancer.training and torch.is_grad_enabled()
        if self.per_group_dense:  # each group's gradient into the pooled features kept apart when balancing
            x = self._dense(balancer.expand(x.t()) if balancing and x.requires_grad else x.t())
            return self._columns(self.dropout(torch.tanh(x)), layout)
        x = self.dropout(torch.tanh(multiplied(self.hidden, x, self.multiplier)))
        if balancing and x.requires_grad:
            return self._columns(balancer.expand(x.t()), layout)
        return multiplied(self.out, x, self.multiplier)
