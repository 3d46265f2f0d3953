"""The multi-group head: pooling, a dense layer per group (or one for all), the columns.

Batched over the groups: every group's columns are laid out padded to the widest group, (groups, width), so that
the per-group dense layers are a few tensor operations whatever the number of groups (`loss_multigroup` holds the
layout, the combined loss and the gradient balancer).

This file is remote code: `save_pretrained` copies it next to the weights, so it imports only the standard library,
torch and the other remote-code files.
"""

import torch
from torch import nn

from .configuration_multigroup import MultiGroupConfig
from .loss_multigroup import GradientBalancer, GroupLayout, group_layout, multi_group_loss

__all__ = ["GradientBalancer", "GroupLayout", "MultiGroupHead", "multi_group_loss", "multiplied"]


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
