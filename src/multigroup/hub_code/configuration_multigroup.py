"""MultiGroupConfig: the groups (checked by `spec_multigroup`), the encoder's fields, the logits layout and label
encoding; decoding comes from `decoding_multigroup`.

This file is remote code: `save_pretrained` copies it next to the weights, so it imports only the standard library,
torch, transformers and the other remote-code files.
"""

import inspect
import math
from typing import Any

import transformers
from transformers.models.auto.configuration_auto import CONFIG_MAPPING  # in every transformers 4 and 5

from .decoding_multigroup import DecodingMixin  # torch only
from .loading_multigroup import HUB_KWARGS, LEGACY_DEFAULTS, sentence_transformers_pooling
from .relations_multigroup import normalize_relations
from .spec_multigroup import MISSING, UnknownLabelError, encode_row, is_number, normalize_group
from .versions_multigroup import PretrainedConfig  # checks the transformers version before any import can fail

LOSS_WEIGHTINGS = ("balanced", "fixed", "normalized", "uncertainty")
POOLINGS = ("cls", "mean", "attention")
# Up to this many groups, a dense layer per group by default; beyond, one shared by every group (hundreds of
# `hidden_size`-squared layers would outweigh the encoder: 59M parameters at 400 groups on a 384-wide encoder).
PER_GROUP_DENSE_UP_TO = 32
# What every config has, with its defaults: an encoder's fields are the rest, and the base fields it sets to its own
# default (transformers 4's base config has `pad_token_id`; RoBERTa's is 1).
_BASE_DEFAULTS = PretrainedConfig().to_dict()
_NOT_ENCODER = {"model_type", "transformers_version", "architectures", "auto_map"}
# Encoder families whose position ids start after the padding index (RoBERTa's rule): pad_token_id + 1 positions
# of `max_position_embeddings` are never used by text.
_POSITIONS_AFTER_PADDING = {"camembert", "roberta", "xlm-roberta", "xlm-roberta-xl", "mpnet", "data2vec-text", "xmod"}


class MultiGroupConfig(DecodingMixin, PretrainedConfig):
    r"""
    Configuration of a model that predicts several label groups from one text encoder.

    Args:
        groups (`list[dict]`):
            The groups, in order. Each is a mapping with `name` (identifier-like, unique), `type` (`"multiclass"`,
            `"multilabel"` or `"regression"`), `labels` (unique strings; none for regression), `weight` (float >= 0,
            default 1.0) and, for multilabel groups, `threshold` (a probability in (0, 1), one value or one per
            label, default 0.3) and `allow_empty` (default True: when False, the best label is always returned).
            Optional: `class_weight` (multiclass) or `pos_weight` (multilabel), one positive number per label;
            `temperature` (a classification group, > 0): its scores are those of its logits divided by it, fitted
            on validation data by `multigroup.calibration.fit_temperatures` so that a score of 0.8 is right 80% of
            the time; it never changes a multiclass decision.
        encoder_type (`str`, *optional*, defaults to `"camembert"`):
            The `model_type` of the encoder (`"camembert"`, `"bert"`, `"roberta"`, `"xlm-roberta"`).
        loss_weighting (`str`, *optional*, defaults to `"balanced"`):
            `"balanced"`: during training each group's gradient into the shared layers is rescaled to the same
            running norm times its `weight` share, so no group starves another whatever its loss's scale (the loss
            itself is `sum(weight * loss / loss_scale)`). `"fixed"`: `sum(weight * loss)`. `"normalized"`: each
            group's loss is divided by its `loss_scale` (the loss of an uninformed prediction, see
            `multigroup.training.fit_loss_scales`). `"uncertainty"`: learned per-group log-variances (Kendall et al.,
            2018), saved with the model.
        pooling (`str`, *optional*, defaults to `"cls"`):
            `"cls"`: the first token, as `...ForSequenceClassification` does; `"mean"`: the mean over tokens, as
            sentence-transformers encoders are trained; `"attention"`: each group's own weighted mean, by a query of
            its own over the tokens (starts as the mean; needs `per_group_dense`). `from_pretrained` on a
            sentence-transformers checkpoint reads its `1_Pooling/config.json` when `pooling` is not given.
        head_multiplier (`float`, *optional*, defaults to 120.0):
            The head's parameters are stored divided by this factor and multiplied back in `forward`, so the
            optimizer moves the new head this many times faster than the encoder: a fresh head needs a much higher
            learning rate than a pretrained encoder. 120 puts the head at 6e-3 under Trainer's default 5e-5, the
            rate `multigroup train` gives it (60 times its 1e-4; 30 in 0.2-0.3). Configs saved before
            this field existed load with 1.0; saved ones keep theirs, and giving a saved model another one is an
            error (its head is stored for its own).
        per_group_dense (`bool`, *optional*, defaults to `True` up to 32 groups, `False` beyond):
            Each group gets a dense layer of its own between the pooled features and its columns (`hidden_size`
            squared parameters per group), instead of one dense layer shared by every group: groups stop competing
            for the head's capacity. Left out (`None`), it is `True` for up to 32 groups and `False` beyond, where
            the per-group layers would outweigh the encoder; the choice is stored. Configs saved before this field
            existed load with False.
        fit_priors (`bool`, *optional*, defaults to `True`):
            Whether the next labelled data encoded by `multigroup.data.prepare_dataset` (the training data, for a
            new head) sets what a new head takes from its labels: each group's `prior`, its label frequencies (the
            head then starts every column at the logit of its label's frequency instead of 0, so a rare label is
            not first pushed up to 0.5 by the whole training set; with the head's multiplier, the plain path's
            restaurants `aspects` macro-F1 went from 0.477 in 0.3.0 to 0.596 at 2 epochs: README, Quality), and,
            where `relations` is `None` (not given), the relations that hold on every training row. Turned off
            once priors are set, or by the first training step. Configs saved before this field existed load with
            False.
        group_top_layer (`bool`, *optional*, defaults to `False`):
            Each group gets its own copy of the encoder's top layer (starting as the checkpoint's), so the groups
            share every layer but the last: more room for each group, at the cost of running that layer once per
            group (a 6-layer encoder with 4 groups does the work of 9 layers). Needs `per_group_dense`. Opt-in: see
            the README's quality benchmark for what it changed on SemEval-2016.
        relations (`list[dict]`, *optional*):
            What the groups' labels say about each other, kept by the one decode so that no prediction contradicts
            them: `{"if": "aspects:BATTERY#QUALITY", "then": ["entities:BATTERY", "attributes:QUALITY"]}` (a
            multilabel label implies labels of other groups) and `{"compose": "aspects", "of": ["entities",
            "attributes"], "separator": "#"}` (each `aspects` label joins one label of each; an `entities` or
            `attributes` label then holds only with one of its `aspects`). Left out (`None`), a new head takes the
            ones that hold on every row of its training data (`fit_priors`: `multigroup.relations.infer_relations`
            when `prepare_dataset` encodes it); `[]` keeps none. `decode(..., relations=False)` decides each group
            alone.
        kwargs:
            The encoder's own hyperparameters (`vocab_size`, `hidden_size`, ...); missing ones take the defaults of
            the encoder family's config.

    Labels are encoded as one flat row of floats, columns in group order: one column per label of a classification
    group (multiclass one-hot, multilabel multi-hot) and one per regression group. A group missing from an example is
    marked `nan` in all its columns (`MISSING`); a real regression target must be finite, so the two never mix.

    Examples:

    ```python
    >>> from multigroup import MultiGroupConfig
    >>> config = MultiGroupConfig(
    ...     groups=[
    ...         {"name": "score", "type": "multiclass", "labels": ["S1", "S2", "S3", "S4", "S5"], "weight": 0.7},
    ...         {"name": "emotions", "type": "multilabel", "labels": ["joy", "anger"], "weight": 4.0},
    ...     ],
    ...     hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
    ... )
    >>> config.num_columns
    7
    >>> config.encode_labels({"score": "S2", "emotions": ["anger"]})
    [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    >>> config.encode_labels({"score": "S2"})[5:]
    [nan, nan]

    ```"""

    model_type = "multigroup"
    # Trainer keeps only the logits for compute_metrics.
    keys_to_ignore_at_inference = ["group_losses", "hidden_states", "attentions"]

    def __init__(
        self,
        groups: list[dict] | None = None,
        encoder_type: str = "camembert",
        loss_weighting: str = "balanced",
        pooling: str = "cls",
        head_multiplier: float = 120.0,
        per_group_dense: bool | None = None,
        fit_priors: bool = True,
        relations: list[dict] | None = None,
        group_top_layer: bool = False,
        **kwargs,
    ):
        if encoder_type not in CONFIG_MAPPING:
            raise ValueError(
                f"`encoder_type` {encoder_type!r} is not a model type of the installed transformers "
                f"{transformers.__version__}"
                + (
                    f"; this model was saved with transformers {kwargs['transformers_version']}: install that version "
                    "or newer"
                    if kwargs.get("transformers_version")
                    else ""
                )  # fmt: skip
                + "."
            )
        kwargs.pop("model_type", None)
        # The family's own config class checks the encoder's fields and fills in its defaults and derived fields
        # (ModernBERT's `layer_types` and `rope_parameters`, ...); they are stored here, flat, as they always were.
        # Its attributes rather than its `to_dict()`: some leave fields out of the file that their model reads.
        family = vars(CONFIG_MAPPING[encoder_type](**kwargs))
        kwargs.update(
            (key, value)
            for key, value in family.items()
            if not key.startswith("_") and key not in _NOT_ENCODER and _BASE_DEFAULTS.get(key, object()) != value
        )
        self.groups, self.encoder_type, self.loss_weighting = groups, encoder_type, loss_weighting
        self.pooling, self.head_multiplier, self.per_group_dense = pooling, head_multiplier, per_group_dense
        self.fit_priors, self.relations, self.group_top_layer = fit_priors, relations, group_top_layer
        super().__init__(**kwargs)
        self.validate_groups()

    def __setattr__(self, name: str, value: Any) -> None:
        # The family's aliases name its own fields when set too (DistilBERT: `hidden_size = 128` sets `dim`).
        family = CONFIG_MAPPING[self.__dict__["encoder_type"]] if "encoder_type" in self.__dict__ else None
        super().__setattr__(family.attribute_map.get(name, name) if family is not None else name, value)

    def __getattr__(self, name: str) -> Any:
        # Reached only when an attribute is not found: the family's aliases (DistilBERT's `hidden_size` is `dim`)
        # and derived properties (ModernBERT's `sliding_window`), read from this config's own fields.
        family = CONFIG_MAPPING[self.__dict__["encoder_type"]] if "encoder_type" in self.__dict__ else None
        if family is not None and not name.startswith("__"):
            if name in family.attribute_map:
                return getattr(self, family.attribute_map[name])
            member = inspect.getattr_static(family, name, None)
            if isinstance(member, property):
                return member.fget(self)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def validate_groups(self) -> None:
        """Check every field of the spec; raises `ValueError` naming the group and field."""
        if self.loss_weighting not in LOSS_WEIGHTINGS:
            raise ValueError(f"`loss_weighting` must be one of {list(LOSS_WEIGHTINGS)}, got {self.loss_weighting!r}.")
        if self.pooling not in POOLINGS:
            raise ValueError(f"`pooling` must be one of {list(POOLINGS)}, got {self.pooling!r}.")
        multiplier = self.head_multiplier
        if not is_number(multiplier) or not math.isfinite(multiplier) or multiplier <= 0:
            raise ValueError(f"`head_multiplier` must be a finite number > 0 (1.0 turns it off), got {multiplier!r}.")
        for name in ("fit_priors", "group_top_layer"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"`{name}` must be True or False, got {getattr(self, name)!r}.")
        if self.groups is None:  # the bare default, or a plain encoder's config read without groups (PEFT does)
            if self.relations:
                raise ValueError("`relations` name groups: give `groups` too.")
            return
        if not isinstance(self.groups, (list, tuple)) or not self.groups:
            raise ValueError(
                "`groups` must be a non-empty list of group dicts, e.g. "
                "[{'name': 'score', 'type': 'multiclass', 'labels': ['bad', 'good']}]; "
                f"got {self.groups!r}. A dict keyed by name is not accepted: its order would be lost in config.json."
            )
        groups = [normalize_group(group, i) for i, group in enumerate(self.groups)]
        names = [group["name"] for group in groups]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"Group names must be unique, got {duplicates} more than once.")
        self.groups = groups
        if self.relations is not None:  # None: not given (a new head takes those of its training data); []: none
            self.relations = normalize_relations(self.relations, groups)
        self.require_groups()  # and the defaults that depend on the groups
        # One name per logits column, derived here and never read back (see `from_dict`): `emotions:joy`, `rating`.
        self.id2label = dict(enumerate(self.column_names))
        self.label2id = {name: i for i, name in self.id2label.items()}
        # For tools that read a flat classifier (`pipeline("text-classification")`): each column scored on its own
        # (sigmoid), never one softmax across the groups' columns. The multi-group pipeline decodes each group.
        self.problem_type = "multi_label_classification"

    def require_groups(self) -> None:
        """Raise unless the config has groups (a plain encoder's config, read without `groups=`, has none); fill in
        the defaults that depend on them (groups given after the config was made)."""
        if not self.groups:
            raise ValueError(
                f"This checkpoint is a plain `{self.encoder_type}` encoder with no label groups. Pass them: "
                "from_pretrained(path, groups=[{'name': ..., 'type': ..., 'labels': [...]}, ...])."
            )
        if self.per_group_dense is None:
            self.per_group_dense = len(self.groups) <= PER_GROUP_DENSE_UP_TO
        own = [name for name, on in (("`pooling='attention'`", self.pooling == "attention"),
                                     ("`group_top_layer`", self.group_top_layer)) if on]  # fmt: skip
        if own and not self.per_group_dense:
            raise ValueError(
                f"{' and '.join(own)}: each group has features of its own, read by a dense layer of its own: pass "
                f"per_group_dense=True (the default up to {PER_GROUP_DENSE_UP_TO} groups), or leave "
                f"{'them' if len(own) > 1 else 'it'} off."
            )

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs) -> "MultiGroupConfig":
        """Load a multigroup config, or a plain encoder's config with `groups=[...]` (encoder fields from it)."""
        hub_kwargs = {key: kwargs[key] for key in HUB_KWARGS if key in kwargs}
        config_dict, kwargs = cls.get_config_dict(pretrained_model_name_or_path, **kwargs)
        if config_dict.get("model_type") != cls.model_type and "pooling" not in kwargs:
            pooling = sentence_transformers_pooling(pretrained_model_name_or_path, hub_kwargs)
            if pooling is not None:
                kwargs["pooling"] = pooling
        return cls.from_dict(config_dict, **kwargs)

    @classmethod
    def is_saved(cls, config_dict: dict) -> bool:
        """Whether a config.json is a saved multigroup model's, whose head's weights are stored for its own
        multiplier (not a plain encoder's, which gets a new head)."""
        return config_dict.get("model_type") == cls.model_type

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs) -> "MultiGroupConfig":
        config_dict = dict(config_dict)
        saved = cls.is_saved(config_dict)
        if saved and "head_multiplier" in kwargs:
            require_stored_multiplier(config_dict, kwargs["head_multiplier"])
        for key in OWN_FIELDS:
            if key in kwargs:
                config_dict[key] = kwargs.pop(key)
        source_type = config_dict.get("model_type", cls.model_type)
        if source_type != cls.model_type:  # a plain encoder checkpoint: keep its hyperparameters, not its head
            for key in ("architectures", "id2label", "label2id", "problem_type", "num_labels", "auto_map"):
                config_dict.pop(key, None)
            config_dict["encoder_type"] = source_type
        elif saved:  # a saved multigroup model: its head weights are stored for its multiplier
            for key, value in LEGACY_DEFAULTS.items():  # written before these fields existed
                config_dict.setdefault(key, value)
            for key in ("id2label", "label2id", "num_labels"):  # derived from the groups
                config_dict.pop(key, None)
        return super().from_dict(config_dict, **kwargs)

    def to_diff_dict(self) -> dict[str, Any]:
        # The encoder's defaults depend on `encoder_type`, so a diff against the class defaults could drop a value
        # that differs from this encoder's default; write the whole config instead.
        return self.to_dict()

    # -- layout ---------------------------------------------------------------------------------------------------

    @property
    def group_names(self) -> list[str]:
        return [group["name"] for group in self.groups or []]

    @property
    def group_slices(self) -> dict[str, slice]:
        """Which logits columns belong to which group, in group order."""
        slices, start = {}, 0
        for group in self.groups or []:
            width = max(len(group["labels"]), 1)
            slices[group["name"]] = slice(start, start + width)
            start += width
        return slices

    @property
    def column_names(self) -> list[str]:
        """One name per logits column: `group:label` for a classification group, the group's name for a regression
        group."""
        groups = self.groups or []
        return [name for g in groups for name in ([f"{g['name']}:{label}" for label in g["labels"]] or [g["name"]])]

    @property
    def num_columns(self) -> int:
        return sum(max(len(group["labels"]), 1) for group in self.groups or [])

    @property
    def max_tokens(self) -> int:
        """The longest input the encoder takes; RoBERTa-family position ids start after the padding index."""
        offset = self.pad_token_id + 1 if self.encoder_type in _POSITIONS_AFTER_PADDING else 0
        return self.max_position_embeddings - offset

    def group(self, name: str) -> dict:
        for group in self.groups or []:
            if group["name"] == name:
                return group
        raise ValueError(f"Unknown group {name!r}; this model's groups are {self.group_names}.")

    # -- labels -> row --------------------------------------------------------------------------------------------

    def encode_labels(self, example: dict, ignore_unknown_labels: bool = False) -> list[float]:
        """Turn `{group: label(s)}` into the flat target row; absent or `None` groups become `MISSING` (nan).

        A multiclass group takes one label string, a multilabel group a list of label strings, a regression group
        a finite number. With `ignore_unknown_labels=True`, labels not in the spec are dropped (a multiclass group
        with an unknown label becomes missing) instead of raising.
        """
        return encode_row(self.groups, example, ignore_unknown_labels)


__all__ = ["MISSING", "MultiGroupConfig", "UnknownLabelError"]


def require_stored_multiplier(saved: dict, multiplier: Any) -> None:
    """A saved head's weights are stored divided by its `head_multiplier` (`saved`: its config.json): loading them
    with another one would scale its logits."""
    stored = saved.get("head_multiplier", LEGACY_DEFAULTS["head_multiplier"])
    if multiplier != stored:
        raise ValueError(
            f"This saved model's head is stored for `head_multiplier` {stored}; another one ({multiplier}) would "
            "change its predictions. Leave `head_multiplier` out (or use the saved config), and set the head's "
            "learning rate with `multigroup.training.build_optimizer`."
        )


# The configuration's own fields, read from its signature (the one place they are written): `from_dict` and the
# Auto class take them out of the keyword arguments; an encoder's fields are the rest.
OWN_FIELDS = tuple(
    name for name in inspect.signature(MultiGroupConfig.__init__).parameters if name not in ("self", "kwargs")
)
