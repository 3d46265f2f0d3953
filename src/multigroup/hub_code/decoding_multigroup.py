"""Logits to predictions: the decision rule and the structured output, the one place they live.

Groups of the same type and width are decided together, as one `(groups, n, width)` tensor: a few tensor operations
for hundreds of groups, then one conversion to Python per output field, with no sorting per row in Python.

This file is remote code: `save_pretrained` copies it next to the weights, so it imports only the standard library,
torch and the other remote-code files.
"""

import gc
from contextlib import contextmanager
from itertools import islice
from typing import Any

import torch

from .relations_multigroup import keep_relations, relation_columns
from .spec_multigroup import check_threshold


class DecodingMixin:
    """`MultiGroupConfig.group_predictions` and `.decode`: read `groups`, `group_slices` and `num_columns`."""

    # -- logits -> predictions ------------------------------------------------------------------------------------

    def group_predictions(
        self, logits: Any, threshold: float | dict | None = None, relations: bool = True
    ) -> dict[str, dict]:
        """The decision rule, the one place it lives: scores and choices per group for a `(n, num_columns)` array.

        Returns, per group name: multiclass `{"scores": (n, k) softmax, "index": (n,) argmax}`; multilabel
        `{"scores": (n, k) sigmoid, "selected": (n, k) bool}`; regression `{"values": (n,)}`. A group's scores are
        those of its logits divided by its `temperature` (calibration; 1 when absent). `threshold`
        overrides the multilabel thresholds: one probability for every multilabel group, or `{group: value}`.
        The config's `relations` are kept (see `keep_relations`) unless `relations=False`.
        """
        logits = self._checked_logits(logits)
        out = {}
        for part in self._decide(logits, self._threshold_overrides(threshold), self.groups, relations):
            for g, group in enumerate(part["groups"]):
                out[group["name"]] = {key: part[key][g] for key in part if key not in ("groups", "cut")}
        return {name: out[name] for name in self.group_names}

    def _checked_logits(self, logits: Any) -> torch.Tensor:
        logits = torch.as_tensor(logits).float()
        if logits.dim() != 2 or logits.shape[-1] != self.num_columns:
            raise ValueError(
                f"Expected logits of shape (n, {self.num_columns}) for groups {self.group_names}, got "
                f"{tuple(logits.shape)}."
            )
        return logits

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
            name: check_threshold(name, value, len(multilabel[name]["labels"]), "`threshold=`")
            for name, value in threshold.items()
        }

    def _decide(self, logits: torch.Tensor, overrides: dict, groups: list[dict], relations: bool = True) -> list[dict]:
        """The decision rule over `groups`, one part per type and width: `{"groups": [...], key: (groups, n, ...)}`.

        Regression parts hold `values` `(groups, n)`; multiclass parts `scores` `(groups, n, k)` and `index`
        `(groups, n)`; multilabel parts `scores`, `selected` `(groups, n, k)` and `cut` (the thresholds). With
        `relations` and the config's relations, every group is decided and the relations kept (`keep_relations`).
        """
        if relations and self.relations:
            groups = self.groups
        parts: dict[tuple[str, int], list[dict]] = {}
        for group in groups:
            parts.setdefault((group["type"], len(group["labels"])), []).append(group)
        slices, device, rows = self.group_slices, logits.device, len(logits)
        decided = []
        for (kind, width), members in parts.items():
            starts = torch.tensor([slices[group["name"]].start for group in members], device=device)
            if kind == "regression":
                decided.append({"groups": members, "values": logits.index_select(1, starts).T})
                continue
            # Each group's columns stay a row of their own, one spare column away from the next row's: on long
            # contiguous runs torch's CPU kernels switch to a vectorised exp that is one ulp off for a few percent
            # of values, so a logit would score differently by where its group sits and ties and thresholds would
            # move. Row by row, the scores are bit for bit those of each group's own `sigmoid` or `softmax`.
            columns = (starts[:, None] + torch.arange(width + 1, device=device).clamp(max=width - 1)).flatten()
            raw = logits.index_select(1, columns).view(rows, len(members), width + 1).transpose(0, 1).contiguous()
            raw = raw[..., :width]
            temperatures = [group.get("temperature", 1.0) for group in members]  # calibration: scores of z / T
            if any(value != 1.0 for value in temperatures):
                raw = raw / torch.tensor(temperatures, dtype=raw.dtype, device=device)[:, None, None]
            if kind == "multiclass":
                scores = raw.softmax(-1)
                decided.append({"groups": members, "scores": scores, "index": scores.argmax(-1)})
                continue
            scores = raw.sigmoid()
            thresholds = [overrides.get(group["name"], group["threshold"]) for group in members]
            thresholds = [value if isinstance(value, (list, tuple)) else [value] * width for value in thresholds]
            cut = torch.tensor(thresholds, dtype=scores.dtype, device=device)[:, None, :]
            selected = scores >= cut
            if not all(group["allow_empty"] for group in members):
                no_empty = torch.tensor([not group["allow_empty"] for group in members], device=device)
                forced = no_empty[:, None] & ~selected.any(-1)  # a group that must answer and passed nothing
                best = torch.nn.functional.one_hot(scores.argmax(-1), width).bool()
                selected = selected | (best & forced[..., None])
            decided.append({"groups": members, "scores": scores, "selected": selected, "cut": cut})
        if relations and self.relations:
            slices = self.group_slices
            keep_relations(decided, slices, *relation_columns(self.relations, self.groups, slices))
        return decided

    def check_options(
        self,
        top_k: int | None = 1,
        threshold: float | dict | None = None,
        groups: list[str] | None = None,
        relations: bool = True,
    ) -> None:
        """Raise the error `decode(logits, **options)` would raise (bad `top_k`, `threshold` or `groups`), before any
        text is encoded: the pipeline and the server check a call's options with this, at the call (every request:
        it checks, it decodes nothing)."""
        self._checked_options(top_k, groups, relations)
        self._threshold_overrides(threshold)

    def _checked_options(
        self, top_k: int | None = 1, groups: list[str] | None = None, relations: bool = True
    ) -> set[str] | None:
        """`decode`'s options other than `threshold`, checked: returns the set of groups asked for (None: all)."""
        if not isinstance(relations, bool):
            raise TypeError(f"`relations` must be True (keep the config's relations) or False, got {relations!r}.")
        if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
            raise ValueError(f"`top_k` must be a positive int or None (every label), got {top_k!r}.")
        if groups is not None:
            if isinstance(groups, str) or not all(isinstance(name, str) for name in groups):
                raise TypeError(f"`groups` must be a list of group names, got {groups!r}.")
            known = set(self.group_names)
            for name in groups:
                if name not in known:
                    self.group(name)  # raises, naming the groups there are
            groups = set(groups)
        return groups

    def decode(
        self,
        logits: Any,
        top_k: int | None = 1,
        threshold: float | dict | None = None,
        groups: list[str] | None = None,
        relations: bool = True,
    ) -> list[dict]:
        """Structured predictions, one dict per row, keyed by group name in group order.

        With `top_k=1`: multiclass `{"label", "score"}`; multilabel the labels at or above their threshold, best
        first; regression `{"value"}`. With `top_k=None` (every label) or `top_k=k`: a list of `{"label", "score"}`
        for each classification group, best first. `groups` restricts the groups returned. The config's `relations`
        are kept (no label without what it implies) unless `relations=False`.
        """
        groups = self._checked_options(top_k, groups, relations)
        logits = self._checked_logits(logits).detach()
        overrides = self._threshold_overrides(threshold)
        wanted = [group for group in self.groups if groups is None or group["name"] in groups]
        columns = {}
        with _collector_paused():
            for part in self._decide(logits, overrides, wanted, relations):
                # relations decide every group: only the parts holding a requested one become output
                if groups is None or any(group["name"] in groups for group in part["groups"]):
                    columns.update(_columns(part, top_k, len(logits)))
            if not wanted:
                return [{} for _ in range(len(logits))]
            names = [group["name"] for group in wanted]
            return [dict(zip(names, row)) for row in zip(*(columns[name] for name in names))]


@contextmanager
def _collector_paused():
    """Python's cyclic garbage collector paused meanwhile: building the hundreds of thousands of small dicts of a
    large output (1,000 rows of 400 groups) would set it off over and over, each pass walking every young object,
    for close to half the time; these dicts hold no cycles. Left as it was found (a caller may have paused it)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _columns(part: dict, top_k: int | None, rows: int) -> dict[str, list]:
    """One part's predictions as Python values: `{group: [one value per row]}`.

    Each field becomes Python in one `tolist()` for the whole part, and each entry is built once: a classification
    group's entries come out of the tensors already best first, so a row's list is one slice.
    """
    members = part["groups"]
    if "values" in part:
        values = iter(part["values"].flatten().tolist())
        return {group["name"]: [{"value": value} for value in islice(values, rows)] for group in members}
    single = top_k == 1 and "index" in part  # a multiclass group's one label, not a list
    chosen = top_k == 1 and "selected" in part  # a multilabel group's labels that passed, a list of any length
    scores, order = _ranked(part["scores"], part.get("index") if single else None)
    width = part["scores"].shape[-1]
    if chosen:
        keep = part["selected"].gather(-1, order)  # (groups, n, k), best first
        # where each row's labels end in its group's entries: a running count, read at each row's last label
        ends = keep.flatten(1).cumsum(1)[:, width - 1 :: width].tolist()
        kept = keep.flatten().nonzero().squeeze(1)
        order, scores = order.flatten()[kept], scores.flatten()[kept]
        sizes = [group_ends[-1] if rows else 0 for group_ends in ends]
    else:
        count = 1 if top_k == 1 else min(top_k or width, width)
        order, scores = order[..., :count], scores[..., :count]
        sizes = [rows * count] * len(members)
    # group after group, row after row, best first; a label's position in its group is a small (cached) int
    pairs = zip(order.flatten().tolist(), scores.flatten().tolist())
    out = {}
    for g, (group, size) in enumerate(zip(members, sizes)):
        labels = group["labels"]
        entries = [{"label": labels[j], "score": score} for j, score in islice(pairs, size)]
        if chosen:
            entries = [entries[start:end] for start, end in zip([0, *ends[g]], ends[g])]
        elif not single:
            entries = [entries[start : start + count] for start in range(0, size, count)]
        out[group["name"]] = entries
    return out


def _ranked(scores: torch.Tensor, best: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores best first along the last dimension, and the label positions they come from.

    Equal scores keep label order (a stable sort), as Python's `sorted` does. Given `best` (the `argmax`: the first
    highest score), only that one, without sorting. A row with NaN has no order (NaN compares false both ways): it
    keeps the order Python's `sorted` gives it, which is what decoding has always returned.
    """
    if best is None:
        order = scores.sort(dim=-1, descending=True, stable=True).indices
    else:
        order = best[..., None].clone()
    if scores.sum().isnan():  # scores lie in [0, 1] unless NaN: their sum is NaN exactly when one is
        for index in scores.isnan().any(-1).nonzero().tolist():
            row = scores[tuple(index)].tolist()
            ranking = sorted(range(len(row)), key=lambda j: -row[j])
            order[tuple(index)] = torch.tensor(ranking[: order.shape[-1]], device=order.device)
    return scores.gather(-1, order), order
