"""MultiGroupConfig: the group spec, its validation, the logits layout, label encoding and decoding.

This file is remote code: `save_pretrained` copies it next to the weights, so it imports only the standard library,
torch and transformers.
"""

import dataclasses
import inspect
import json
import math
from typing import Any

import torch
import transformers
from transformers import PreTrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

if int(transformers.__version__.split(".")[0]) < 5:
    raise ImportError(
        f"multigroup models need transformers>=5.0, but transformers {transformers.__version__} is installed. "
        "Upgrade it with: pip install -U 'transformers>=5,<6'"
    )

GROUP_TYPES = ("multiclass", "multilabel", "regression")
LOSS_WEIGHTINGS = ("balanced", "fixed", "normalized", "uncertainty")
POOLINGS = ("cls", "mean")
# Before any tuning: 0.5 under-predicts rare labels; 0.3 scored better in micro- and macro-F1 on the validation
# sets of both SemEval-2016 benchmarks (untuned joint and plain-path models). `multigroup.thresholds` tunes them.
DEFAULT_THRESHOLD = 0.3
MISSING = float("nan")  # the marker of a group absent from an example, in every column of that group
_GROUP_KEYS = {
    "name",
    "type",
    "labels",
    "weight",
    "threshold",
    "allow_empty",
    "class_weight",
    "pos_weight",
    "loss_scale",
}
_BASE_FIELDS = {f.name for f in dataclasses.fields(PreTrainedConfig)}
_NOT_ENCODER = {"model_type", "transformers_version", "architectures", "auto_map"}
# Encoder families whose position ids start after the padding index (RoBERTa's rule): pad_token_id + 1 positions
# of `max_position_embeddings` are never used by text.
_POSITIONS_AFTER_PADDING = {"camembert", "roberta", "xlm-roberta", "xlm-roberta-xl", "mpnet", "data2vec-text", "xmod"}
_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_positive_list(group: dict, key: str, size: int) -> None:
    values = group.get(key)
    if values is None:
        return
    if not isinstance(values, (list, tuple)) or len(values) != size:
        raise ValueError(
            f"Group `{group['name']}`: `{key}` must be a list of {size} numbers (one per label), got {values!r}."
        )
    if not all(_is_number(v) and math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"Group `{group['name']}`: every `{key}` value must be a finite number > 0, got {values!r}.")
    group[key] = [float(v) for v in values]


def _check_threshold(name: str, threshold: Any, num_labels: int, where: str = "`threshold`") -> float | list[float]:
    values = threshold if isinstance(threshold, (list, tuple)) else [threshold]
    if isinstance(threshold, (list, tuple)) and len(values) != num_labels:
        raise ValueError(
            f"Group `{name}`: {where} has {len(values)} values but the group has {num_labels} labels; give one "
            "probability for the whole group or exactly one per label."
        )
    for value in values:
        if not _is_number(value) or not 0 < value < 1:
            raise ValueError(f"Group `{name}`: {where} must be a probability strictly between 0 and 1, got {value!r}.")
    return [float(v) for v in values] if isinstance(threshold, (list, tuple)) else float(threshold)


def normalize_group(group: Any, index: int) -> dict:
    """Validate one group mapping and return it in canonical form (every field explicit)."""
    if not isinstance(group, dict):
        raise TypeError(
            f"Group #{index} must be a dict like {{'name': ..., 'type': ..., 'labels': [...]}}, got {group!r}."
        )
    name = group.get("name")
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(
            f"Group #{index}: `name` must be an identifier-like string (letters, digits, underscores; it becomes a "
            f"key in outputs and metric names), got {name!r}."
        )
    unknown = set(group) - _GROUP_KEYS
    if unknown:
        raise ValueError(
            f"Group `{name}`: unknown field(s) {sorted(unknown)}; allowed fields are {sorted(_GROUP_KEYS)}."
        )
    kind = group.get("type")
    if kind not in GROUP_TYPES:
        raise ValueError(
            f"Group `{name}`: `type` must be one of {list(GROUP_TYPES)}, got {kind!r}. If this config was written "
            "by a newer multigroup, upgrade multigroup or load the code files saved with it."
        )
    out = {"name": name, "type": kind}

    labels = group.get("labels")
    if kind == "regression":
        if labels:
            raise ValueError(f"Group `{name}`: a regression group has no `labels`, got {labels!r}; remove them.")
        out["labels"] = []
    else:
        minimum = 2 if kind == "multiclass" else 1
        if not isinstance(labels, (list, tuple)) or len(labels) < minimum:
            raise ValueError(
                f"Group `{name}`: a {kind} group needs a list of at least {minimum} labels, got {labels!r}."
            )
        bad = [label for label in labels if not isinstance(label, str) or not label]
        if bad:
            raise ValueError(f"Group `{name}`: labels must be non-empty strings, got {bad!r}; write them as str.")
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        if duplicates:
            raise ValueError(f"Group `{name}`: duplicate labels {duplicates}; each label must appear once.")
        out["labels"] = list(labels)

    weight = group.get("weight", 1.0)
    if not _is_number(weight) or not math.isfinite(weight) or weight < 0:
        raise ValueError(f"Group `{name}`: `weight` must be a finite number >= 0, got {weight!r}.")
    out["weight"] = float(weight)
    scale = group.get("loss_scale", 1.0)
    if not _is_number(scale) or not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"Group `{name}`: `loss_scale` must be a finite number > 0, got {scale!r}.")
    out["loss_scale"] = float(scale)

    extra = {"multiclass": {"class_weight"}, "multilabel": {"threshold", "allow_empty", "pos_weight"}}.get(kind, set())
    misplaced = (set(group) & {"threshold", "allow_empty", "class_weight", "pos_weight"}) - extra
    if misplaced:
        raise ValueError(f"Group `{name}`: {sorted(misplaced)} do not apply to a {kind} group; remove them.")
    if kind == "multilabel":
        out["threshold"] = _check_threshold(name, group.get("threshold", DEFAULT_THRESHOLD), len(out["labels"]))
        allow_empty = group.get("allow_empty", True)
        if not isinstance(allow_empty, bool):
            raise ValueError(f"Group `{name}`: `allow_empty` must be True or False, got {allow_empty!r}.")
        out["allow_empty"] = allow_empty
    for key in extra & {"class_weight", "pos_weight"}:
        if group.get(key) is not None:
            out[key] = group[key]
            _check_positive_list(out, key, len(out["labels"]))
    return out


def _sentence_transformers_pooling(path: str, hub_kwargs: dict) -> str | None:
    """`"mean"` or `"cls"` from a sentence-transformers checkpoint's `1_Pooling/config.json`; None without one."""
    from transformers.utils import cached_file

    found = cached_file(
        path, "1_Pooling/config.json", _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False, **hub_kwargs,
    )  # fmt: skip
    if found is None:
        return None
    with open(found, encoding="utf-8") as file:
        modes = json.load(file)
    if modes.get("pooling_mode_mean_tokens"):
        return "mean"
    return "cls" if modes.get("pooling_mode_cls_token") else None


class MultiGroupConfig(PreTrainedConfig):
    r"""
    Configuration of a model that predicts several label groups from one text encoder.

    Args:
        groups (`list[dict]`):
            The groups, in order. Each is a mapping with `name` (identifier-like, unique), `type` (`"multiclass"`,
            `"multilabel"` or `"regression"`), `labels` (unique strings; none for regression), `weight` (float >= 0,
            default 1.0) and, for multilabel groups, `threshold` (a probability in (0, 1), one value or one per
            label, default 0.3) and `allow_empty` (default True: when False, the best label is always returned).
            Optional: `class_weight` (multiclass) or `pos_weight` (multilabel), one positive number per label.
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
            sentence-transformers encoders are trained. `from_pretrained` on a sentence-transformers checkpoint
            reads its `1_Pooling/config.json` when `pooling` is not given.
        head_multiplier (`float`, *optional*, defaults to 30.0):
            The head's parameters are stored divided by this factor and multiplied back in `forward`, so the
            optimizer moves the new head this many times faster than the encoder: a fresh head needs a 10-30x
            higher learning rate than a pretrained encoder. Configs saved before this field existed load with 1.0.
        per_group_dense (`bool`, *optional*, defaults to `True`):
            Each group gets a dense layer of its own between the pooled features and its columns (`hidden_size`
            squared parameters per group), instead of one dense layer shared by every group: groups stop competing
            for the head's capacity. Configs saved before this field existed load with False.
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

    groups: list[dict] | None = None
    encoder_type: str = "camembert"
    loss_weighting: str = "balanced"
    pooling: str = "cls"
    head_multiplier: float = 30.0
    per_group_dense: bool = True

    def __post_init__(self, **kwargs):
        if self.encoder_type not in CONFIG_MAPPING:
            raise ValueError(f"`encoder_type` {self.encoder_type!r} is not a transformers model type.")
        kwargs.pop("model_type", None)
        # The family's own config class checks the encoder's fields and fills in its defaults and derived fields
        # (ModernBERT's `layer_types` and `rope_parameters`, ...); they are stored here, flat, as they always were.
        family = CONFIG_MAPPING[self.encoder_type](**kwargs).to_dict()
        kwargs.update(
            (key, value) for key, value in family.items() if key not in _BASE_FIELDS and key not in _NOT_ENCODER
        )
        super().__post_init__(**kwargs)
        self.validate_groups()

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
        if not _is_number(multiplier) or not math.isfinite(multiplier) or multiplier <= 0:
            raise ValueError(f"`head_multiplier` must be a finite number > 0 (1.0 turns it off), got {multiplier!r}.")
        if self.groups is None:  # the bare default, or a plain encoder's config read without groups (PEFT does)
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
        # One name per logits column, derived here and never read back (see `from_dict`): `emotions:joy`, `rating`.
        self.id2label = dict(enumerate(self.column_names))
        self.label2id = {name: i for i, name in self.id2label.items()}

    def require_groups(self) -> None:
        """Raise unless the config has groups (a plain encoder's config, read without `groups=`, has none)."""
        if not self.groups:
            raise ValueError(
                f"This checkpoint is a plain `{self.encoder_type}` encoder with no label groups. Pass them: "
                "from_pretrained(path, groups=[{'name': ..., 'type': ..., 'labels': [...]}, ...])."
            )

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs) -> "MultiGroupConfig":
        """Load a multigroup config, or a plain encoder's config with `groups=[...]` (encoder fields from it)."""
        hub_kwargs = {key: kwargs[key] for key in _HUB_KWARGS if key in kwargs}
        config_dict, kwargs = cls.get_config_dict(pretrained_model_name_or_path, **kwargs)
        if config_dict.get("model_type") != cls.model_type and "pooling" not in kwargs:
            pooling = _sentence_transformers_pooling(pretrained_model_name_or_path, hub_kwargs)
            if pooling is not None:
                kwargs["pooling"] = pooling
        return cls.from_dict(config_dict, **kwargs)

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs) -> "MultiGroupConfig":
        config_dict = dict(config_dict)
        for key in ("groups", "encoder_type", "loss_weighting", "pooling", "head_multiplier", "per_group_dense"):
            if key in kwargs:
                config_dict[key] = kwargs.pop(key)
        source_type = config_dict.get("model_type", cls.model_type)
        if source_type != cls.model_type:  # a plain encoder checkpoint: keep its hyperparameters, not its head
            for key in ("architectures", "id2label", "label2id", "problem_type", "num_labels", "auto_map"):
                config_dict.pop(key, None)
            config_dict["encoder_type"] = source_type
        elif (
            config_dict.get("model_type") == cls.model_type
        ):  # a saved multigroup model: its head weights are stored for its multiplier
            # Written before these fields existed (multigroup 0.1.0): its weights are for the 0.1.0 head.
            config_dict.setdefault("head_multiplier", 1.0)
            config_dict.setdefault("per_group_dense", False)
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
        row: list[float] = []
        for group in self.groups:
            name, kind, labels = group["name"], group["type"], group["labels"]
            value = example.get(name)
            if value is None:
                row.extend([MISSING] * max(len(labels), 1))
            elif kind == "regression":
                if not _is_number(value) or not math.isfinite(value):
                    raise ValueError(f"Group `{name}` (regression) needs a finite number, got {value!r}.")
                row.append(float(value))
            elif kind == "multiclass":
                if not isinstance(value, str):
                    raise TypeError(
                        f"Group `{name}` is multiclass: give exactly one label as a string, got {value!r}."
                    )
                if value not in labels:
                    if not ignore_unknown_labels:
                        raise ValueError(f"Group `{name}`: unknown label {value!r}; known labels are {labels}.")
                    row.extend([MISSING] * len(labels))
                    continue
                row.extend(1.0 if label == value else 0.0 for label in labels)
            else:
                if isinstance(value, str) or not isinstance(value, (list, tuple, set)):
                    raise TypeError(
                        f"Group `{name}` is multilabel: give a list of label strings (possibly empty), got {value!r}."
                    )
                unknown = [label for label in value if label not in labels]
                if unknown and not ignore_unknown_labels:
                    raise ValueError(f"Group `{name}`: unknown label(s) {unknown}; known labels are {labels}.")
                row.extend(1.0 if label in value else 0.0 for label in labels)
        return row

    # -- logits -> predictions ------------------------------------------------------------------------------------

    def group_predictions(self, logits: Any, threshold: float | dict | None = None) -> dict[str, dict]:
        """The decision rule, the one place it lives: scores and choices per group for a `(n, num_columns)` array.

        Returns, per group name: multiclass `{"scores": (n, k) softmax, "index": (n,) argmax}`; multilabel
        `{"scores": (n, k) sigmoid, "selected": (n, k) bool}`; regression `{"values": (n,)}`. `threshold`
        overrides the multilabel thresholds: one probability for every multilabel group, or `{group: value}`.
        """
        logits = torch.as_tensor(logits).float()
        if logits.dim() != 2 or logits.shape[-1] != self.num_columns:
            raise ValueError(
                f"Expected logits of shape (n, {self.num_columns}) for groups {self.group_names}, got "
                f"{tuple(logits.shape)}."
            )
        overrides = self._threshold_overrides(threshold)
        out = {}
        for group, columns in zip(self.groups, self.group_slices.values()):
            name, scores = group["name"], logits[:, columns]
            if group["type"] == "regression":
                out[name] = {"values": scores[:, 0]}
            elif group["type"] == "multiclass":
                probs = scores.softmax(-1)
                out[name] = {"scores": probs, "index": probs.argmax(-1)}
            else:
                probs = scores.sigmoid()
                threshold = torch.tensor(overrides.get(name, group["threshold"]), device=probs.device)
                selected = probs >= threshold
                if not group["allow_empty"]:
                    best = torch.nn.functional.one_hot(probs.argmax(-1), probs.shape[-1]).bool()
                    selected = selected | (best & ~selected.any(-1, keepdim=True))
                out[name] = {"scores": probs, "selected": selected}
        return out

    def _threshold_overrides(self, threshold: float | dict | None) -> dict[str, float | list[float]]:
        multilabel = {group["name"]: group for group in self.groups if group["type"] == "multilabel"}
        if threshold is None:
            return {}
        if not isinstance(threshold, dict):
            threshold = dict.fromkeys(multilabel, threshold)
        for name in threshold:
            if name not in multilabel:
                raise ValueError(f"`threshold` names {name!r}, which is not a multilabel group: {list(multilabel)}.")
        return {
            name: _check_threshold(name, value, len(multilabel[name]["labels"]), "`threshold=`")
            for name, value in threshold.items()
        }

    def decode(
        self,
        logits: Any,
        top_k: int | None = 1,
        threshold: float | dict | None = None,
        groups: list[str] | None = None,
    ) -> list[dict]:
        """Structured predictions, one dict per row, keyed by group name in group order.

        With `top_k=1`: multiclass `{"label", "score"}`; multilabel the labels at or above their threshold, best
        first; regression `{"value"}`. With `top_k=None` (every label) or `top_k=k`: a list of `{"label", "score"}`
        for each classification group, best first. `groups` restricts the groups returned.
        """
        if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
            raise ValueError(f"`top_k` must be a positive int or None (every label), got {top_k!r}.")
        if groups is not None:
            if isinstance(groups, str) or not all(isinstance(name, str) for name in groups):
                raise TypeError(f"`groups` must be a list of group names, got {groups!r}.")
            for name in groups:
                self.group(name)
        predictions = self.group_predictions(logits, threshold)
        wanted = [group for group in self.groups if groups is None or group["name"] in groups]
        # Each group's tensors become Python lists once, not one slice per row.
        values = {name: {key: tensor.tolist() for key, tensor in pred.items()} for name, pred in predictions.items()}
        rows = []
        for i in range(len(logits)):
            row = {}
            for group in wanted:
                pred, labels = values[group["name"]], group["labels"]
                if group["type"] == "regression":
                    row[group["name"]] = {"value": pred["values"][i]}
                    continue
                scores = pred["scores"][i]
                order = sorted(range(len(labels)), key=lambda j: -scores[j])
                ranked = [{"label": labels[j], "score": scores[j]} for j in order]
                if top_k != 1:
                    row[group["name"]] = ranked[:top_k]
                elif group["type"] == "multiclass":
                    row[group["name"]] = ranked[0]
                else:
                    chosen = pred["selected"][i]
                    row[group["name"]] = [ranked[r] for r, j in enumerate(order) if chosen[j]]
            rows.append(row)
        return rows


__all__ = ["MISSING", "MultiGroupConfig"]
