"""The model class of any encoder family, built from transformers' (the head, the loss and loading in files of
their own), and its saving.

This file is remote code: `save_pretrained` copies it next to the weights, so it imports only the standard library,
torch, transformers and the other remote-code files.
"""

import ast
import functools
import inspect
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModel, PreTrainedModel
from transformers.modeling_outputs import ModelOutput
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES, MODEL_MAPPING_NAMES

# transformers 4 copies, from a local folder, only the files that `auto_map`'s modules import themselves (not what
# those import in turn): every file the pipeline needs is imported here too.
from .batching_multigroup import read_ahead  # noqa: F401
from .card_multigroup import PIPELINE_TASK, push_to_hub_with_card
from .configuration_multigroup import MultiGroupConfig, require_stored_multiplier

# Imported so that the pipeline file and the Inference Endpoints handler always travel with the model's code
# (transformers copies relative imports; a folder loaded through remote code and saved again stays complete), and
# the task is registered whenever the model is.
from .handler import EndpointHandler  # noqa: F401
from .head_multigroup import MultiGroupHead
from .loading_multigroup import HUB_KWARGS, LEGACY, LEGACY_KEYS, load_report_hidden, report_loading
from .loss_multigroup import GradientBalancer, multi_group_loss
from .pipeline_multigroup import MultiGroupClassificationPipeline
from .top_layer_multigroup import add_group_copies, group_top_name, missing_copies, start_copies_as_layer, top_layer
from .versions_multigroup import init, make_portable


def code_files(entry: str, folder: Path = Path(__file__).parent) -> tuple[str, ...]:
    """`entry` and the files of `folder` it imports by relative imports, transitively, sorted: the same rule by
    which transformers copies a remote-code module with the files it needs."""
    found, todo = set(), [entry]
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            tree = ast.parse((folder / name).read_text(encoding="utf-8"))
            todo += [f"{node.module}.py" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level]
    return tuple(sorted(found))


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
        The encoder's hidden states, one `(batch_size, sequence_length, hidden_size)` tensor per layer (with
        `group_top_layer`, the last one is each group's: `(num_groups, batch_size, sequence_length, hidden_size)`).
    attentions (`tuple(torch.FloatTensor)`, *optional*, returned when `output_attentions=True`):
        The encoder's attention weights, one `(batch_size, num_heads, sequence_length, sequence_length)` per layer
        (with `group_top_layer`, transformers 5 also lists those of each group's copy of the top layer).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    group_losses: dict[str, torch.FloatTensor] | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class MultiGroupModelMixin:
    """The encoder of the config's family (under the family's own attribute name, so that its checkpoints load with
    or without their prefix) and the head; the forward, initialisation, loading and saving of every family."""

    config_class = MultiGroupConfig
    # Trainer scales the loss by gradient-accumulation steps when `forward` takes **kwargs; this loss is a mean.
    accepts_loss_kwargs = False
    _encoder_class: type  # set per family by `model_class`
    _encoder_inputs: frozenset  # the forward arguments that family's encoder takes

    def __init__(self, config: MultiGroupConfig):
        super().__init__(config)
        options = {"add_pooling_layer": False} if "add_pooling_layer" in _parameters(self._encoder_class) else {}
        setattr(self, self.base_model_prefix, self._encoder_class(config, **options))
        self.classifier = MultiGroupHead(config)
        self._group_top = None  # where the top layer with copies is: a path, right in replicas and copies too
        if config.group_top_layer:
            top = top_layer(getattr(self, self.base_model_prefix), config.num_hidden_layers)
            add_group_copies(top, len(config.groups), config)
            self._group_top = next(name for name, module in self.named_modules() if module is top)
        self.post_init()

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
        inputs = {"attention_mask": attention_mask, "token_type_ids": token_type_ids, "position_ids": position_ids,
                  "inputs_embeds": inputs_embeds, "output_attentions": output_attentions,
                  "output_hidden_states": output_hidden_states}  # fmt: skip
        if token_type_ids is not None and "token_type_ids" not in self._encoder_inputs and token_type_ids.any():
            raise ValueError(
                f"A `{self.config.encoder_type}` encoder has no token types, but `token_type_ids` were given: drop "
                "them (this encoder's tokenizer does not return them)."
            )
        if self._group_top is not None:  # balanced at its input by the head in use (PEFT's copy of it, ...); kept
            # for a checkpointed layer's second run in backward
            self.get_submodule(self._group_top).expand = self.classifier._own_copies
        outputs = self.base_model(input_ids, **{k: v for k, v in inputs.items() if k in self._encoder_inputs})
        logits = self.classifier(outputs[0], attention_mask)

        loss = group_losses = None
        if labels is not None:
            if self.training and self.config.fit_priors:  # trained from here on: later data never moves its priors
                self.config.fit_priors = False
            log_vars = getattr(self.classifier, "log_vars", None)
            loss, group_losses = multi_group_loss(logits, labels, self.config, log_vars, self.classifier.layout)

        output = MultiGroupClassifierOutput(
            loss=loss,
            logits=logits,
            group_losses=group_losses,
            hidden_states=getattr(outputs, "hidden_states", None),
            attentions=getattr(outputs, "attentions", None),
        )
        return output if return_dict is not False else output.to_tuple()

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        head = getattr(self, "classifier", None)
        if isinstance(head, MultiGroupHead) and any(module is linear for linear in (head.hidden, head.out)):
            # Stored divided by the multiplier (see MultiGroupHead): the family's init for the product.
            std = getattr(self.config, "initializer_range", 0.02)
            init.normal_(module.weight, mean=0.0, std=std / head.multiplier)
            init.zeros_(module.bias)
        if isinstance(module, MultiGroupHead):
            for name in ("log_vars", "queries"):  # log-variances start at 0; attention pooling starts as the mean
                if hasattr(module, name):
                    init.zeros_(getattr(module, name))
        if isinstance(module, GradientBalancer):
            init.zeros_(module.norms)

    @classmethod
    def _from_config(cls, config: MultiGroupConfig, **kwargs):
        family = model_class(config.encoder_type)  # the Auto classes may call another family's class
        if issubclass(cls, family):
            return super()._from_config(config, **kwargs)
        return family._from_config(config, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """Load a saved multigroup model, or a plain checkpoint of the family's encoder with a new head.

        Either way transformers' table of loading details is replaced by one line: for a plain checkpoint, which
        head is new and what of the checkpoint was left out (its own pooler or head); for a saved multigroup model,
        nothing unless a weight is missing or unused.
        """
        hub = {key: kwargs[key] for key in HUB_KWARGS if key in kwargs}
        found = cls.config_class.get_config_dict(pretrained_model_name_or_path, **hub)[0]
        saved = cls.config_class.is_saved(found)
        config = kwargs.get("config")
        if saved and isinstance(config, cls.config_class):  # its head's weights are stored for its own multiplier
            require_stored_multiplier(found, config.head_multiplier)
        family = (
            config.encoder_type if isinstance(config, cls.config_class) else found.get("encoder_type", "camembert")
        )
        family = family if saved or isinstance(config, cls.config_class) else found.get("model_type")
        if family is None:
            raise ValueError(
                f"{pretrained_model_name_or_path}'s config.json names no `model_type`: pass `encoder_type=` (e.g. "
                "'bert') or `config=` to say which encoder family it is."
            )
        if not issubclass(cls, model_class(family)):  # transformers' Auto classes keep the first class they saw
            return model_class(family).from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        if saved:  # multigroup <= 0.2 named the head `head`, with `dense` and `out_proj` layers
            kwargs.setdefault("key_mapping", LEGACY_KEYS)
        wants_info = kwargs.pop("output_loading_info", False)
        with load_report_hidden():
            model, info = super().from_pretrained(
                pretrained_model_name_or_path, *args, output_loading_info=True, **kwargs
            )
        # transformers would write renamed keys back under their old names when saving: keep the new ones.
        conversions = getattr(model, "_weight_conversions", None)
        if conversions:
            model._weight_conversions = [c for c in conversions if getattr(c, "source_patterns", None) not in LEGACY]
        new_copies = missing_copies(info.get("missing_keys") or [])
        if new_copies:  # a new copy starts as the loaded top layer
            start_copies_as_layer(model.get_submodule(model._group_top), new_copies)
        with torch.no_grad():  # weights loaded into unaligned memory make a batched matmul round otherwise: the
            for param in model.classifier.parameters():  # head's (per-group features) logits then differ by ~1e-8
                param.data = param.data.clone()
        report_loading(model, pretrained_model_name_or_path, info, saved)
        return (model, info) if wants_info else model

    def push_to_hub(self, repo_id: str, **kwargs):
        """Push weights, config, code files and the multigroup model card to a Hub repo, in one commit."""
        return push_to_hub_with_card(self.save_pretrained, self.config, repo_id, **kwargs)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Save weights (safetensors), config and the code files, so the folder loads with `trust_remote_code`.

        Everything is written to a temporary folder beside `save_directory` first, then moved in file by file
        (`os.replace` is atomic), so a save that fails part-way leaves an existing model folder as it was. With
        `push_to_hub=True`, the finished folder is then pushed with the model card (`repo_id` defaults to its name).
        """
        push = kwargs.pop("push_to_hub", False)
        push_options = {key: kwargs.pop(key) for key in _PUSH_KWARGS if key in kwargs}
        name = type(self).__name__
        self.config.auto_map = {
            "AutoConfig": "configuration_multigroup.MultiGroupConfig",
            "AutoModel": f"modeling_multigroup.{name}",
            "AutoModelForSequenceClassification": f"modeling_multigroup.{name}",
        }
        # transformers 4 pipelines load a tokenizer only for a config that names its class (tokenizer_config wins)
        self.config.tokenizer_class = getattr(self.config, "tokenizer_class", None) or "PreTrainedTokenizerFast"
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
            for file_name in code_files(Path(__file__).name):  # this file and what it imports (handler, pipeline)
                shutil.copyfile(Path(__file__).with_name(file_name), staging / file_name)
            make_portable(staging)
            written = {path.name for path in staging.iterdir()}
            for path in staging.iterdir():
                os.replace(path, target / path.name)
            for path in target.iterdir():  # weight files of an earlier save that this one does not have
                if _WEIGHT_FILE.fullmatch(path.name) and path.name not in written:
                    path.unlink()
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if push:
            self.push_to_hub(push_options.pop("repo_id", None) or target.name, **push_options)


_PUSH_KWARGS = ("repo_id", "commit_message", "private", "token", "create_pr", "revision")


def _parameters(function) -> set[str]:
    return set(inspect.signature(function).parameters)


def encoder_class(encoder_type: str) -> type:
    """transformers' encoder class (`AutoModel`'s) of an encoder-only model type, e.g. `BertModel` for `"bert"`."""
    if encoder_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES or encoder_type not in MODEL_MAPPING_NAMES:
        raise ValueError(
            f"No multi-group model for encoder type `{encoder_type}`: multigroup puts its head on an encoder-only "
            "(masked language model) type of transformers, such as bert, deberta-v2, modernbert or xlm-roberta."
        )
    return AutoModel._model_mapping[CONFIG_MAPPING[encoder_type]]


@functools.cache
def model_class(encoder_type: str) -> type:
    """The multi-group model class of an encoder family, e.g. `DebertaV2ForMultiGroupClassification`.

    It subclasses the family's own `...PreTrainedModel`, so it keeps the family's weight initialisation, its
    checkpoint prefix (`bert`, `roberta`, `deberta`, `model`, ...) and what it supports (SDPA, gradient
    checkpointing, ...); `MultiGroupModelMixin` adds the head, the loss and the saving.
    """
    encoder = encoder_class(encoder_type)
    family = next(base for base in encoder.__mro__ if PreTrainedModel in base.__bases__)
    takes = _parameters(encoder.forward)
    if any(p.kind is p.VAR_KEYWORD for p in inspect.signature(encoder.forward).parameters.values()):
        takes |= {"output_attentions", "output_hidden_states"}  # transformers 5 passes these as keyword arguments
    name = encoder.__name__.removesuffix("Model") + "ForMultiGroupClassification"
    namespace = {
        "__module__": __name__,
        "__qualname__": name,
        "_encoder_class": encoder,
        "_encoder_inputs": frozenset(takes),
    }
    if family._no_split_modules:  # a top layer with its groups' copies stays whole on a device too
        namespace["_no_split_modules"] = [*family._no_split_modules, *map(group_top_name, family._no_split_modules)]
    return type(name, (MultiGroupModelMixin, family), namespace)


def __getattr__(name: str) -> type | tuple[str, ...]:
    """`<Family>ForMultiGroupClassification` (`CamembertForMultiGroupClassification`, ...), as a saved config's
    `auto_map` names it; built on first use, so that importing this file imports no encoder family. `CODE_FILES`:
    what `save_pretrained` copies beside the weights (read from the files when asked: no I/O at import)."""
    if name == "CODE_FILES":
        return code_files(Path(__file__).name)
    if name.endswith("ForMultiGroupClassification"):
        wanted = name.removesuffix("ForMultiGroupClassification") + "Model"
        for encoder_type, class_name in MODEL_MAPPING_NAMES.items():
            if wanted == class_name or (isinstance(class_name, (list, tuple)) and wanted in class_name):
                return model_class(encoder_type)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# `<Family>ForMultiGroupClassification` names are provided by `__getattr__`.
__all__ = ["MultiGroupClassifierOutput", "encoder_class", "model_class", "multi_group_loss"]
