"""The group spec: what a group may say, checked and written out in full (every field explicit).

This file is remote code: `save_pretrained` copies it next to the weights, so it imports only the standard library.
"""

import math
import re
from typing import Any

GROUP_TYPES = ("multiclass", "multilabel", "regression")
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
    "prior",
    "temperature",
}


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_positive_list(group: dict, key: str, size: int) -> None:
    values = group.get(key)
    if values is None:
        return
    if not isinstance(values, (list, tuple)) or len(values) != size:
        raise ValueError(
            f"Group `{group['name']}`: `{key}` must be a list of {size} numbers (one per label), got {values!r}."
        )
    if not all(is_number(v) and math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"Group `{group['name']}`: every `{key}` value must be a finite number > 0, got {values!r}.")
    group[key] = [float(v) for v in values]


def check_threshold(name: str, threshold: Any, num_labels: int, where: str = "`threshold`") -> float | list[float]:
    values = threshold if isinstance(threshold, (list, tuple)) else [threshold]
    if isinstance(threshold, (list, tuple)) and len(values) != num_labels:
        raise ValueError(
            f"Group `{name}`: {where} has {len(values)} values but the group has {num_labels} labels; give one "
            "probability for the whole group or exactly one per label."
        )
    for value in values:
        if not is_number(value) or not 0 < value < 1:
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
    if not is_number(weight) or not math.isfinite(weight) or weight < 0:
        raise ValueError(f"Group `{name}`: `weight` must be a finite number >= 0, got {weight!r}.")
    out["weight"] = float(weight)
    scale = group.get("loss_scale", 1.0)
    if not is_number(scale) or not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"Group `{name}`: `loss_scale` must be a finite number > 0, got {scale!r}.")
    out["loss_scale"] = float(scale)

    extra = {"multiclass": {"class_weight"}, "multilabel": {"threshold", "allow_empty", "pos_weight"}}.get(kind, set())
    misplaced = (set(group) & {"threshold", "allow_empty", "class_weight", "pos_weight"}) - extra
    if misplaced:
        raise ValueError(f"Group `{name}`: {sorted(misplaced)} do not apply to a {kind} group; remove them.")
    if kind == "multilabel":
        out["threshold"] = check_threshold(name, group.get("threshold", DEFAULT_THRESHOLD), len(out["labels"]))
        allow_empty = group.get("allow_empty", True)
        if not isinstance(allow_empty, bool):
            raise ValueError(f"Group `{name}`: `allow_empty` must be True or False, got {allow_empty!r}.")
        out["allow_empty"] = allow_empty
    for key in extra & {"class_weight", "pos_weight"}:
        if group.get(key) is not None:
            out[key] = group[key]
            _check_positive_list(out, key, len(out["labels"]))
    if group.get("prior") is not None:
        out["prior"] = _check_prior(name, kind, group["prior"], max(len(out["labels"]), 1))
    if group.get("temperature") is not None:  # fitted by `multigroup.calibration`; absent: 1, the raw logits
        temperature = group["temperature"]
        if kind == "regression":
            raise ValueError(f"Group `{name}`: `temperature` does not apply to a regression group; remove it.")
        if not is_number(temperature) or not math.isfinite(temperature) or temperature <= 0:
            raise ValueError(f"Group `{name}`: `temperature` must be a finite number > 0, got {temperature!r}.")
        out["temperature"] = float(temperature)
    return out


def _check_prior(name: str, kind: str, prior: Any, size: int) -> list[float]:
    """A group's `prior`: each label's frequency in the training data (a probability), or a regression group's
    mean target; the head starts its logits there (`prior_offsets`)."""
    what = "the training mean" if kind == "regression" else "one frequency in [0, 1] per label"
    values = prior if isinstance(prior, (list, tuple)) else [None]
    ok = len(values) == size and all(is_number(v) and math.isfinite(v) for v in values)
    if ok and kind != "regression":
        ok = all(0 <= v <= 1 for v in values)
    if not ok:
        raise ValueError(f"Group `{name}`: `prior` must be a list of {size} number(s), {what}, got {prior!r}.")
    return [float(v) for v in values]


PRIOR_CLIP = 1e-3  # a label never (or always) seen starts at logit -6.9 (6.9), not at minus infinity


def prior_offsets(groups: list[dict]) -> list[float] | None:
    """The logits an uninformed model gives, one per column: `log(p / (1 - p))` for a multilabel label of
    frequency p, `log(p)` centred for a multiclass group, the mean for a regression group; 0 for a group without
    `prior`; None when no group has one (configs saved before priors existed decode as before)."""
    if not any(group.get("prior") for group in groups):
        return None
    offsets = []
    for group in groups:
        prior = group.get("prior")
        if not prior:
            offsets += [0.0] * max(len(group["labels"]), 1)
        elif group["type"] == "regression":
            offsets += prior
        else:
            p = [min(max(v, PRIOR_CLIP), 1 - PRIOR_CLIP) for v in prior]
            if group["type"] == "multilabel":
                offsets += [math.log(v / (1 - v)) for v in p]
            else:
                logs = [math.log(v) for v in p]
                offsets += [v - sum(logs) / len(logs) for v in logs]
    return offsets


def spelled_like_hub_id(name) -> bool:
    """`org/name` or `name`, as the Hub spells repo ids (whether or not a folder here has that name)."""
    return isinstance(name, str) and bool(re.fullmatch(r"\w[\w.-]*(/\w[\w.-]*)?", name))


class UnknownLabelError(ValueError):
    """A label that is not in its group's spec (`encode_labels`); a `ValueError` whose message names the group,
    then `fix`: how the caller lets a user drop such labels (`with_fix` gives the same error with another)."""

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(f"{message} {fix}" if fix else message)
        self.message, self.fix = message, fix

    def with_fix(self, fix: str | None) -> "UnknownLabelError":
        return UnknownLabelError(self.message, fix)


def encode_row(groups: list[dict], example: dict, ignore_unknown_labels: bool = False) -> list[float]:
    """`MultiGroupConfig.encode_labels` on the normalised `groups` (the one rule: see there)."""
    row: list[float] = []
    for group in groups:
        name, kind, labels = group["name"], group["type"], group["labels"]
        value = example.get(name)
        if value is None:
            row.extend([MISSING] * max(len(labels), 1))
        elif kind == "regression":
            if not is_number(value) or not math.isfinite(value):
                raise ValueError(f"Group `{name}` (regression) needs a finite number, got {value!r}.")
            row.append(float(value))
        elif kind == "multiclass":
            if not isinstance(value, str):
                raise TypeError(f"Group `{name}` is multiclass: give exactly one label as a string, got {value!r}.")
            if value not in labels:
                if not ignore_unknown_labels:
                    raise UnknownLabelError(f"Group `{name}`: unknown label {value!r}; {_known(labels)}.")
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
                raise UnknownLabelError(f"Group `{name}`: unknown label(s) {unknown}; {_known(labels)}.")
            row.extend(1.0 if label in value else 0.0 for label in labels)
    return row


def _known(labels: list[str], shown: int = 12) -> str:
    """`known labels are [...]`, the first `shown` of a long list and how many there are in all."""
    if len(labels) <= shown:
        return f"known labels are {labels}"
    return f"known labels are {labels[:shown]} and {len(labels) - shown} more ({len(labels)} in all)"
