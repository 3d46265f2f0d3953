"""Logits to predictions: the decision rule and the structured output, the one place they live.

This file is remote code: `save_pretrained` copies it next to the weights, so it imports only the standard library,
torch and the other remote-code files.
"""

from typing import Any

import torch

from .spec_multigroup import check_threshold


class DecodingMixin:
    """`MultiGroupConfig.group_predictions` and `.decode`: read `groups`, `group_slices` and `num_columns`."""

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
            name: check_threshold(name, value, len(multilabel[name]["labels"]), "`threshold=`")
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
