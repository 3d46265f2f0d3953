"""MultiGroupClassificationPipeline: text in, one structured prediction per group out.

This file is remote code: `save_pretrained` copies it next to the weights, so it imports only the standard library,
torch, transformers and the other remote-code files.
"""

import os
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import torch
from transformers import AutoModel, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .batching_multigroup import WINDOW_BATCHES, batches_ahead, by_length, check_texts, read_ahead, windows
from .card_multigroup import PIPELINE_TASK, push_to_hub_with_card
from .versions_multigroup import make_portable

_UNSET = object()


# One lock per tokenizer: a background thread tokenizes while no other does (a Rust tokenizer whose settings change
# during another thread's call raises "Already borrowed"). Kept here, not on the pipeline, which stays picklable.
_TOKENIZER_LOCKS: "weakref.WeakKeyDictionary[Any, threading.Lock]" = weakref.WeakKeyDictionary()
_LOCKS_LOCK = threading.Lock()


def _as_stream(inputs: Any) -> tuple[Iterator, bool]:
    """An iterator over the texts, and whether the caller gets a list back (a list, tuple or other sized sequence
    such as a `datasets` Column) or an iterator (a dataset, `KeyDataset`, generator or any other iterable)."""
    if isinstance(inputs, (list, tuple)):
        return iter(inputs), True
    if isinstance(inputs, torch.utils.data.Dataset) and hasattr(inputs, "__len__"):
        return (inputs[i] for i in range(len(inputs))), False
    if hasattr(inputs, "__len__") and hasattr(inputs, "__getitem__") and not isinstance(inputs, (str, bytes, dict)):
        return iter(inputs), True
    if hasattr(inputs, "__iter__") and not isinstance(inputs, (str, bytes, dict)):
        return iter(inputs), False
    raise TypeError(
        f"The pipeline takes a string, a list of strings, a dataset column or any iterable of strings, got "
        f"{type(inputs).__name__} {inputs!r}."
    )


class MultiGroupClassificationPipeline(Pipeline):
    """Predict every label group of a multigroup model.

    `clf("text")` returns one dict keyed by group name, in group order: a multiclass group gives
    `{"label": str, "score": float}`, a multilabel group a list of `{"label", "score"}` at or above the thresholds
    (best first, possibly empty), a regression group `{"value": float}`. A list, tuple or `datasets` column of texts
    returns a list of those; a dataset, `KeyDataset`, generator or other iterable an iterator over them, in input
    order (texts are read `window_batches` batches at a time, so a stream's memory stays flat). On an accelerator a
    background thread reads and tokenizes the next `READ_AHEAD` batches while the model runs (set `clf.read_ahead` to
    choose; 0: no thread).

    Call arguments: `top_k=None` (or an int k) returns every (or the k best) label with its score for each
    classification group; `groups=[...]` restricts the groups returned; `threshold=` overrides the multilabel
    thresholds (one probability, or `{group: probability or per-label list}`); `relations=False` decides each group
    alone, ignoring the config's relations; `batch_size=` sets how many texts
    go through the model at once (texts are grouped by length, so padding stays small). Texts longer than the
    model's maximum length are truncated.
    """

    window_batches = WINDOW_BATCHES  # texts read and sorted by length together, in batches
    read_ahead: int | None = None  # batches tokenized ahead in a background thread; None: READ_AHEAD off CPU, else 0

    def _sanitize_parameters(self, top_k=_UNSET, threshold=None, groups=None, max_length=None, relations=None):
        postprocess = {}
        if relations is not None:
            postprocess["relations"] = relations
        if top_k is not _UNSET:
            postprocess["top_k"] = top_k
        if threshold is not None:
            postprocess["threshold"] = threshold
        if groups is not None:
            postprocess["groups"] = groups
        if postprocess:  # fail before any text is encoded
            self.model.config.check_options(**postprocess)
        preprocess = {"max_length": max_length} if max_length is not None else {}
        return preprocess, {}, postprocess

    def __call__(self, inputs, **kwargs):
        if isinstance(inputs, str):
            return super().__call__(inputs, **kwargs)
        stream, sized = _as_stream(inputs)
        batch_size = kwargs.pop("batch_size", None)
        kwargs.pop("num_workers", None)  # transformers' DataLoader workers: a background thread tokenizes here
        batch_size = (self._batch_size or 1) if batch_size is None else batch_size
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}.")
        checked = {"top_k", "threshold", "groups", "max_length", "relations"}  # fail at the call, not later
        self._sanitize_parameters(**{key: value for key, value in kwargs.items() if key in checked})
        results = self._in_order(stream, batch_size, kwargs)
        return list(results) if sized else results

    def _in_order(self, stream: Iterator, batch_size: int, kwargs: dict) -> Iterator[dict]:
        """One rule for every input: read a window of texts, sort it by length into batches (each padded once), give
        the results back in input order; memory stays that of one window. With `read_ahead`, reading and tokenizing
        run in a background thread that many batches ahead, so the model does not wait for them."""
        preprocess_params, forward_params, postprocess_params = self._sanitize_parameters(**kwargs)
        preprocess_params = {**self._preprocess_params, **preprocess_params}
        forward_params = {**self._forward_params, **forward_params}
        postprocess_params = {**self._postprocess_params, **postprocess_params}
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # as transformers' own batched calls
        window = batch_size * self.window_batches
        with _LOCKS_LOCK:  # no tokenizer: preprocess names what to do
            lock = (
                threading.Lock()
                if self.tokenizer is None
                else _TOKENIZER_LOCKS.setdefault(self.tokenizer, threading.Lock())
            )

        def encoded() -> Iterator:
            """Per window: its length order and batch count, then each batch's model inputs."""
            for texts in windows(stream, window):
                order = by_length(texts)
                yield order, -(-len(texts) // batch_size)
                for s in range(0, len(texts), batch_size):
                    with lock:
                        inputs = self.preprocess([texts[i] for i in order[s : s + batch_size]], **preprocess_params)
                    yield inputs

        items = read_ahead(encoded(), batches_ahead(self.read_ahead, self.device))
        for order, count in items:
            rows = []
            for _ in range(count):
                outputs = self.forward(next(items), **forward_params)
                rows += self.postprocess(outputs, **postprocess_params)
            results = [None] * len(order)
            for position, i in enumerate(order):
                results[i] = rows[position]
            yield from results

    def save_pretrained(self, save_directory, **kwargs):
        """Save the model (weights, config, code files) and its tokenizer, readable by transformers 4 and 5."""
        super().save_pretrained(save_directory, **kwargs)
        make_portable(save_directory)

    def push_to_hub(self, repo_id: str, **kwargs):
        """Push model, tokenizer, code files and the multigroup model card to a Hub repo, in one commit."""
        return push_to_hub_with_card(self.save_pretrained, self.model.config, repo_id, **kwargs)

    def _max_length(self) -> int:
        return min(self.tokenizer.model_max_length, self.model.config.max_tokens)

    def preprocess(self, inputs: str | list[str], max_length: int | None = None) -> dict:
        if self.tokenizer is None:
            raise ValueError(
                "This pipeline has no tokenizer: pass tokenizer=... to pipeline(), or save the model with its "
                "tokenizer (the pipeline's save_pretrained / push_to_hub do)."
            )
        texts = [inputs] if isinstance(inputs, str) else check_texts(inputs)
        encoded = self.tokenizer(
            texts, padding=True, truncation=True, max_length=max_length or self._max_length(), return_tensors="pt"
        )
        return {"model_inputs": dict(encoded), "single": isinstance(inputs, str)}

    def _forward(self, inputs: dict) -> dict:
        return {"logits": self.model(**inputs["model_inputs"]).logits, "single": inputs.get("single", False)}

    def postprocess(
        self, outputs: dict, top_k: int | None = 1, threshold=None, groups=None, relations: bool = True
    ) -> dict | list[dict]:
        rows = self.model.config.decode(
            outputs["logits"], top_k=top_k, threshold=threshold, groups=groups, relations=relations
        )
        return rows[0] if outputs["single"] else rows


if PIPELINE_TASK not in PIPELINE_REGISTRY.supported_tasks:
    PIPELINE_REGISTRY.register_pipeline(
        PIPELINE_TASK, pipeline_class=MultiGroupClassificationPipeline, pt_model=AutoModel, type="text"
    )
