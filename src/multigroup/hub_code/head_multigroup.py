"""The multi-group head: pooling, a dense layer per group (or one for all), the columns.

Batched over the groups: every group's columns are laid out padded to the widest group, (groups, width), so that
the per-group dense layers are a few tensor operations whatever the number of groups (`loss_multigroup` holds the
layout, the combined loss and the gradient balancer).

This file is remote code: `save_pretrained` copies it next to the weights, so it imports only the standard library,
torch and the other remote-code files.
"""

import torch
import torch.nn.functional as F
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


def affine(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """`x W^T + b` for features (batch, in) and a layer's (out, in) weight, as `nn.Linear` computes it; for each
    group's features (groups, in, batch) and weights (groups, out, in), `W x + b`: (groups, out, batch)."""
    return F.linear(x, weight, bias) if weight.dim() == 2 else torch.baddbmm(bias, weight, x)


def multiplied(weight: torch.Tensor, bias: torch.Tensor, features: torch.Tensor, multiplier: float) -> torch.Tensor:
    """`affine(weight, bias, features)` computed with the parameters times `multiplier`, their gradients left
    unscaled: Adam(W) then moves the product `multiplier` times faster than the optimizer's learning rate, while
    gradient clipping sees the usual norm. The product is never formed: the output is multiplied, and the gradient
    into the features, so a head of hundreds of dense layers costs no operation over its weights."""
    if multiplier == 1:
        return affine(weight, bias, features)
    if not torch.is_grad_enabled():
        return affine(weight, bias, features) * multiplier
    return _TimesValue.apply(affine(weight, bias, _TimesGradient.apply(features, multiplier)), multiplier)


def pool(hidden_states: torch.Tensor, attention_mask: torch.Tensor | None, pooling: str) -> torch.Tensor:
    """(..., batch, sequence, hidden) -> (..., batch, hidden): the mean over the text's tokens, or the first
    token's; a leading groups dimension (each group's own states, `group_top_layer`) is kept."""
    if pooling != "mean":
        return hidden_states[..., 0, :]
    mask = (
        torch.ones(hidden_states.shape[-3:-1], device=hidden_states.device)
        if attention_mask is None
        else attention_mask
    )
    mask = mask.unsqueeze(-1).to(hidden_states.dtype)
    return (hidden_states * mask).sum(-2) / mask.sum(-2).clamp(min=1e-9)


class MultiGroupHead(nn.Module):
    """Pooling, then dense + tanh + dropout (a dense layer per group, or one for all), then each group's columns.
    Pooling is the mean of the tokens, the first token, or (`"attention"`) each group's own weighted mean: a softmax
    of the tokens against a query per group (`queries`, starting at 0: the mean).

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
        if self.pooling == "attention":  # a query per group over the tokens; at 0 every token weighs alike: the mean
            self.queries = nn.Parameter(torch.zeros(self.num_groups, config.hidden_size))
        self.config = config  # the model's own: priors set after the head was built reach it through the layout
        if config.loss_weighting == "balanced":
            self.balancer = GradientBalancer([group["weight"] for group in config.groups])
        if config.loss_weighting == "uncertainty":
            self.log_vars = nn.Parameter(torch.zeros(len(config.groups)))

    @property
    def layout(self) -> GroupLayout:
        """The groups' layout, kept while the config's groups stay as they are (`group_layout`)."""
        self._layout = group_layout(self.config, getattr(self, "_layout", None))
        return self._layout

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        layout = self.layout
        if self.pooling == "attention":
            x = self.dropout(self._attend(hidden_states, attention_mask))
        else:
            x = self.dropout(pool(hidden_states, attention_mask, self.pooling))
            x = x.transpose(1, 2) if x.dim() == 3 else x  # each group's own (group_top_layer): (groups, hidden, batch)
        x = self.dropout(torch.tanh(self._dense(x)))
        logits = self._columns(x, layout)
        if layout.offset is None:  # no priors (models saved before them): the logits as they were, bit for bit
            return logits
        return logits + layout.on(logits.device, logits.dtype)["offset"]

    def _own_copies(self, x: torch.Tensor) -> torch.Tensor:
        """In a balanced training step, each group's own copy of `x` (groups, ...), so that its gradient into the
        shared features is kept apart (`GradientBalancer`); otherwise `x` itself."""
        balancer = getattr(self, "balancer", None)
        if balancer is not None and balancer.training and torch.is_grad_enabled() and x.requires_grad:
            balancer.shares = self.layout.shares  # relations set after the head was built count too
            return balancer.expand(x)
        return x

    def _attend(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """(batch, sequence, hidden) -> each group's own weighted mean of the tokens (groups, hidden, batch): its
        query's softmax over the text's tokens. Balanced in training: each group reads its own copy of the tokens,
        so a step holds groups x batch x sequence x hidden of their gradient. Each group's own token states
        (groups, batch, sequence, hidden: `group_top_layer`) are read as they are."""
        tokens = hidden_states if hidden_states.dim() == 4 else self._own_copies(hidden_states)
        spec = "gbth,gh->gbt" if tokens.dim() == 4 else "bth,gh->gbt"
        scores = _TimesValue.apply(
            torch.einsum(spec, _TimesGradient.apply(tokens, self.multiplier), self.queries), self.multiplier
        )
        if attention_mask is not None:
            scores = scores.masked_fill(attention_mask[None] == 0, torch.finfo(scores.dtype).min)
        weights = scores.softmax(-1)
        return torch.einsum("gbt,gbth->ghb" if tokens.dim() == 4 else "gbt,bth->ghb", weights, tokens)

    def _dense(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled features (batch, hidden), or each group's own (groups, hidden, batch: attention pooling,
        `group_top_layer`) ->
        before tanh: one shared layer's (batch, hidden), or each group's dense layer (groups, hidden, batch), laid
        out so that the weight's gradient comes out in its own layout (at hundreds of groups it is far larger than
        the activations)."""
        weight, bias = self.hidden.weight, self.hidden.bias
        if not self.per_group_dense:
            return multiplied(weight, bias, x, self.multiplier)
        x = self._own_copies(x.t()) if x.dim() == 2 else x  # each group's own features already
        if x.dim() == 2:  # one matmul for every group; as `nn.Linear` runs it, whose results do not depend on where
            # the weights lie in memory (a save and load gives the same logits bit for bit)
            dense = multiplied(weight, bias, x.t(), self.multiplier)
            return dense.t().unflatten(0, (self.num_groups, self.hidden_size))
        weight, bias = weight.unflatten(0, (self.num_groups, -1)), bias.view(self.num_groups, -1, 1)
        return multiplied(weight, bias, x, self.multiplier)

    def _columns(self, x: torch.Tensor, layout: GroupLayout) -> torch.Tensor:
        """The dense features -> the logits (batch, columns): shared features (batch, hidden) through `out` at
        once, or each group's (groups, hidden, batch) through its own rows of `out` (padded to the widest group)."""
        if not self.per_group_dense:
            x = self._own_copies(x.t())
            if x.dim() == 2:
                return multiplied(self.out.weight, self.out.bias, x.t(), self.multiplier)
        padded, layout = layout.padded, layout.on(x.device, x.dtype)
        index, shape = layout["index"].flatten(), (*layout["index"].shape, -1)
        weight, bias = self.out.weight.index_select(0, index).view(shape), self.out.bias.index_select(0, index)
        logits = multiplied(weight, bias.view(shape), x, self.multiplier)
        logits = logits.flatten(0, 1).t()  # (batch, groups * width)
        return logits.index_select(1, layout["positions"]) if padded else logits.contiguous()
