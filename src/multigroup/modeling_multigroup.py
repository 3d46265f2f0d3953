"""The multi-group head, the combined loss, and one thin model class per encoder family.

This file is remote code: `save_pretrained` copies it next to the weights, so it imports only the standard library,
torch, transformers and the other remote-code files.
"""

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.modeling_outputs import ModelOutput
from transformers.models.bert.modeling_bert import BertModel, BertPreTrainedModel
from transformers.models.camembert.modeling_camembert import CamembertModel, CamembertPreTrainedModel
from transformers.models.roberta.modeling_roberta import RobertaModel, RobertaPreTrainedModel
from transformers.models.xlm_roberta.modeling_xlm_roberta import XLMRobertaModel, XLMRobertaPreTrainedModel

from .configuration_multigroup import MultiGroupConfig

# Imported so that the pipeline file always travels with the model's code (transformers copies relative imports)
# and the task is registered whenever the model is.
from .pipeline_multigroup import PIPELINE_TASK, MultiGroupClassificationPipeline, push_to_hub_with_card

CODE_FILES = ("configuration_multigroup.py", "modeling_multigroup.py", "pipeline_multigroup.py")
_WEIGHT_FILE = re.compile(r"(model|pytorch_model)(-\d{5}-of-\d{5})?\.(safetensors|bin)(\.index\.json)?")


@dataclass
class MultiGroupClassifierOutput(ModelOutput):
    r"""
    loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` is given):
        The combined loss: the weighted sum of the group losses (see `MultiGroupConfig.loss_weighting`).
    logits (`torch.FloatTensor` of shape `(batch_size, num_columns)`):
        Raw scores, columns in group order (`config.group_slices`).
    group_losses (`dict[str, torch.FloatTensor]`, *optional*, returned when `labels` is given):
        Each group's unweighted loss, averaged over the rows of the batch that carry the group (0 when none does).
    hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned when `output_hidden_states=True`):
        The encoder's hidden states, one `(batch_size, sequence_length, hidden_size)` tensor per layer.
    attentions (`tuple(torch.FloatTensor)`, *optional*, returned when `output_attentions=True`):
        The encoder's attention weights, one `(batch_size, num_heads, sequence_length, sequence_length)` per layer.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    group_losses: dict[str, torch.FloatTensor] | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


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
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.pooling = config.pooling
        self.multiplier = config.head_multiplier
        self.per_group_dense, self.hidden_size = config.per_group_dense, config.hidden_size
        width = config.hidden_size * (len(config.groups) if config.per_group_dense else 1)
        self.dense = nn.Linear(config.hidden_size, width)
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(config.hidden_size, config.num_columns)
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
        dense_weight, dense_bias = scaled(self.dense.weight, self.multiplier), scaled(self.dense.bias, self.multiplier)
        weight, bias = scaled(self.out_proj.weight, self.multiplier), scaled(self.out_proj.bias, self.multiplier)
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


class MultiGroupModelMixin:
    """The shared forward, initialisation and saving; each family class only builds its encoder and the head."""

    config_class = MultiGroupConfig
    # Trainer scales the loss by gradient-accumulation steps when `forward` takes **kwargs; this loss is a mean.
    accepts_loss_kwargs = False

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> tuple | MultiGroupClassifierOutput:
        r"""
        labels (`torch.FloatTensor` of shape `(batch_size, num_columns)`, *optional*):
            Flat targets from `config.encode_labels`: one-hot for multiclass groups, multi-hot for multilabel groups,
            the value for regression groups, `nan` for a group an example does not carry.
        """
        outputs = self.base_model(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.head(outputs.last_hidden_state, attention_mask)

        loss = group_losses = None
        if labels is not None:
            loss, group_losses = multi_group_loss(logits, labels, self.config, getattr(self.head, "log_vars", None))

        output = MultiGroupClassifierOutput(
            loss=loss,
            logits=logits,
            group_losses=group_losses,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )
        return output if return_dict is not False else output.to_tuple()

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        head = getattr(self, "head", None)
        if head is not None and any(module is linear for linear in (head.dense, head.out_proj)):
            # Stored divided by the multiplier (see MultiGroupHead): the family's init for the product.
            init.normal_(module.weight, mean=0.0, std=self.config.initializer_range / head.multiplier)
            init.zeros_(module.bias)
        if isinstance(module, MultiGroupHead) and hasattr(module, "log_vars"):
            init.zeros_(module.log_vars)
        if isinstance(module, GradientBalancer):
            init.zeros_(module.norms)

    def push_to_hub(self, repo_id: str, **kwargs):
        """Push weights, config, code files and the multigroup model card to a Hub repo, in one commit."""
        return push_to_hub_with_card(self.save_pretrained, self.config, repo_id, **kwargs)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Save weights (safetensors), config and the code files, so the folder loads with `trust_remote_code`.

        Everything is written to a temporary folder beside `save_directory` first, then moved in file by file
        (`os.replace` is atomic), so a save that fails part-way leaves an existing model folder as it was.
        """
        name = type(self).__name__
        self.config.auto_map = {
            "AutoConfig": "configuration_multigroup.MultiGroupConfig",
            "AutoModel": f"modeling_multigroup.{name}",
            "AutoModelForSequenceClassification": f"modeling_multigroup.{name}",
        }
        self.config.custom_pipelines = {
            PIPELINE_TASK: {
                "impl": f"pipeline_multigroup.{MultiGroupClassificationPipeline.__name__}",
                "pt": ["AutoModel"],
                "tf": [],
                "type": "text",
            }
        }
        target = Path(save_directory)
        target.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".saving-", dir=target.parent))
        try:
            super().save_pretrained(staging, *args, **kwargs)
            # Copy from beside this file: right both for the installed package and for code loaded from a Hub
            # repo, so that a model loaded through remote code and saved again stays complete.
            for file_name in CODE_FILES:
                shutil.copyfile(Path(__file__).with_name(file_name), staging / file_name)
            written = {path.name for path in staging.iterdir()}
            for path in staging.iterdir():
                os.replace(path, target / path.name)
            for path in target.iterdir():  # weight files of an earlier save that this one does not have
                if _WEIGHT_FILE.fullmatch(path.name) and path.name not in written:
                    path.unlink()
        finally:
            shutil.rmtree(staging, ignore_errors=True)


class BertForMultiGroupClassification(MultiGroupModelMixin, BertPreTrainedModel):
    config: MultiGroupConfig

    def __init__(self, config: MultiGroupConfig):
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.head = MultiGroupHead(config)
        self.post_init()


class CamembertForMultiGroupClassification(MultiGroupModelMixin, CamembertPreTrainedModel):
    config: MultiGroupConfig

    def __init__(self, config: MultiGroupConfig):
        super().__init__(config)
        self.roberta = CamembertModel(config, add_pooling_layer=False)
        self.head = MultiGroupHead(config)
        self.post_init()


class RobertaForMultiGroupClassification(MultiGroupModelMixin, RobertaPreTrainedModel):
    config: MultiGroupConfig

    def __init__(self, config: MultiGroupConfig):
        super().__init__(config)
        self.roberta = RobertaModel(config, add_pooling_layer=False)
        self.head = MultiGroupHead(config)
        self.post_init()


class XLMRobertaForMultiGroupClassification(MultiGroupModelMixin, XLMRobertaPreTrainedModel):
    config: MultiGroupConfig

    def __init__(self, config: MultiGroupConfig):
        super().__init__(config)
        self.roberta = XLMRobertaModel(config, add_pooling_layer=False)
        self.head = MultiGroupHead(config)
        self.post_init()


MODEL_FOR_MULTI_GROUP_MAPPING = {
    "bert": BertForMultiGroupClassification,
    "camembert": CamembertForMultiGroupClassification,
    "roberta": RobertaForMultiGroupClassification,
    "xlm-roberta": XLMRobertaForMultiGroupClassification,
}

__all__ = [
    "BertForMultiGroupClassification",
    "CamembertForMultiGroupClassification",
    "MODEL_FOR_MULTI_GROUP_MAPPING",
    "MultiGroupClassifierOutput",
    "RobertaForMultiGroupClassification",
    "XLMRobertaForMultiGroupClassification",
    "multi_group_loss",
]
