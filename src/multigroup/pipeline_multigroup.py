"""MultiGroupClassificationPipeline: text in, one structured prediction per group out.

This file is remote code: `save_pretrained` copies it next to the weights, so it imports only the standard library,
torch, transformers and the other remote-code files.
"""

import json
import os
import queue
import tempfile
import threading
import weakref
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModel, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .versions_multigroup import MINIMUM_TRANSFORMERS, is_hub_id, make_portable

PIPELINE_TASK = "multi-group-classification"
_UNSET = object()


# A stream is read this many batches at a time; texts are sorted by length within that window, so that texts of
# similar length share a batch (little padding), and results are given back in input order.
WINDOW_BATCHES = 64
# On an accelerator, a background thread reads and tokenizes this many batches ahead while the model runs the current
# one. On CPU the forward already keeps the cores busy and the thread gains nothing (scripts/bench_pipeline_inputs.py):
# there each batch is tokenized in turn.
READ_AHEAD = 2
# One lock per tokenizer: a background thread tokenizes while no other does (a Rust tokenizer whose settings change
# during another thread's call raises "Already borrowed"). Kept here, not on the pipeline, which stays picklable.
_TOKENIZER_LOCKS: "weakref.WeakKeyDictionary[Any, threading.Lock]" = weakref.WeakKeyDictionary()
_LOCKS_LOCK = threading.Lock()


def _check_texts(texts: list, start: int = 0) -> list[str]:
    """The texts, or a TypeError naming the first item that is not a string by its position in the whole input."""
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            hint = " For a datasets.Dataset, pass its column: clf(ds['text'])." if isinstance(text, dict) else ""
            raise TypeError(
                f"Input #{start + i} is {type(text).__name__} {text!r}; every input must be a string (use '' for "
                f"none).{hint}"
            )
    return texts


def batches_ahead(chosen: int | None, device) -> int:
    """How many batches to tokenize ahead: `chosen`, or by default `READ_AHEAD` on an accelerator and none on CPU."""
    return chosen if chosen is not None else 0 if device.type == "cpu" else READ_AHEAD


def _read_ahead(items: Iterator, ahead: int) -> Iterator:
    """The items, in order, computed by a background thread at most `ahead` items before they are asked for (memory
    stays bounded); an exception raised there is raised here at its place in the sequence. `ahead=0`: no thread."""
    if ahead < 1:
        yield from items
        return
    done, buffer, stop = object(), queue.Queue(maxsize=ahead), threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                buffer.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return  # the caller stopped reading
            put((done, None))
        except BaseException as error:  # noqa: BLE001 - handed to the caller, raised there
            put((done, error))

    threading.Thread(target=produce, name="multigroup-read-ahead", daemon=True).start()
    try:
        while True:
            item, error = buffer.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stop.set()  # a caller that stops early (break, close, an error) ends the thread at its next item


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


def model_card(
    config, repo_id: str | None = None, evaluations: list[dict] | None = None, training: dict | None = None
) -> str:
    """README.md for the Hub: metadata, the label schema of every group, how the model was trained, scores when
    given, and usage.

    `evaluations`: `[{"file", "split", "used_for": [...], "metrics": {...}}]`, the held-out ones first (see
    `multigroup.hub.record_evaluation`); each table names its data and split, and says when that data also
    chose the thresholds or the checkpoint (optimistic scores). `training`: the settings `multigroup train`
    recorded (`multigroup.hub.record_training`). `repo_id`: the Hub repo, once pushed; None before.
    """
    base_model = getattr(config, "base_model", None) if is_hub_id(getattr(config, "base_model", None)) else None
    quote = lambda text: json.dumps(str(text), ensure_ascii=False)  # noqa: E731 - a JSON string is valid YAML
    cell = lambda text: str(text).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")  # noqa: E731
    lines = ["---", "library_name: transformers", "pipeline_tag: text-classification", "tags:"]
    lines += [f"- {tag}" for tag in ("multigroup", "custom_code", "multi-label-classification", "text-classification")]
    if base_model:
        lines.append(f"base_model: {quote(base_model)}")
    evaluations = evaluations or []
    lead = evaluations[0] if evaluations else {"metrics": {}}
    scores = {k: v for k, v in lead["metrics"].items() if k in ("f1_micro", "f1_macro", "mean_f1_macro")}
    title = repo_id or "A multigroup model"
    if scores:  # the dataset by a plain name, never a path of the machine that trained the model
        data, split = quote(_dataset_name(lead["file"])), quote(lead["split"])
        lines += ["model-index:", f"- name: {quote(title)}", "  results:", "  - task:",
                  "      type: text-classification", "    dataset:", f"      name: {data}", f"      type: {data}",
                  f"      split: {split}", "    metrics:"]  # fmt: skip
        lines += [f"    - type: {key}\n      value: {round(float(value), 4)}" for key, value in scores.items()]
    lines += ["---", "", f"# {cell(title)}", ""]
    lines.append(
        f"One `{config.encoder_type}` encoder that predicts {len(config.groups)} label groups at once, trained with "
        "multigroup." + (f" Base model: `{cell(base_model)}`." if base_model else "")
    )
    lines += ["", "## Label groups", "", "| group | type | labels | weight |", "|---|---|---|---|"]
    for group in config.groups:
        labels = ", ".join(f"`{cell(label)}`" for label in group["labels"]) or "(a number)"
        lines.append(f"| `{cell(group['name'])}` | {group['type']} | {labels} | {group['weight']} |")
    if training:
        lines += ["", "## Training", "", "`multigroup train` with these settings (`metrics.json` keeps them):", "",
                  "| setting | value |", "|---|---|"]  # fmt: skip
        defaults = set(training.get("from_defaults") or ())
        for key, value in training.items():
            if key != "from_defaults" and value is not None:
                lines.append(f"| {cell(key)} | `{cell(value)}`{' (multigroup default)' if key in defaults else ''} |")
    if evaluations:
        lines += ["", "## Evaluation"]
    for evaluation in evaluations:
        used = " and ".join(evaluation.get("used_for") or [])
        caveat = f"; it also chose the {used}, so these scores are optimistic" if used else ", held out"
        lines += ["", f"On `{cell(evaluation['file'])}` (split `{cell(evaluation['split'])}`{caveat}):", ""]
        missed = {
            k: v for k, v in ((evaluation.get("unknown_labels") or {}).get("scored_as_misses") or {}).items() if v
        }
        if missed:
            counts = ", ".join(f"{count} in `{cell(name)}`" for name, count in missed.items())
            lines += [f"Gold labels the model has no column for were scored as misses: {counts}.", ""]
        lines += ["| metric | value |", "|---|---|"]
        metrics = evaluation["metrics"]
        lines += [f"| {cell(k)} | {v:.4f} |" for k, v in sorted(metrics.items()) if isinstance(v, float)]
    if repo_id:
        load = [f'clf = pipeline("multi-group-classification", model={quote(repo_id)}, trust_remote_code=True)']
    else:  # before `multigroup push` names the repo, a folder
        load = ['clf = pipeline("multi-group-classification", model="path/to/this/folder", trust_remote_code=True)',
                '# once pushed (multigroup push --model FOLDER --repo-id you/name), model="you/name"']  # fmt: skip
    lines += [
        "", "## Usage", "",
        f"Needs only `transformers>={MINIMUM_TRANSFORMERS}` and torch: the model's code ships in this repo. Read it, "
        "and pin the commit you read "
        "with `revision=`.", "", "```python", "from transformers import pipeline", "",
        *load, 'clf("Your text here")', "```", "",
    ]  # fmt: skip
    return "\n".join(lines)


def _dataset_name(file: str) -> str:
    """A plain name for the data a score came from: its folder's name (`semeval16_absa_laptops_en`), else the
    file's stem. A path on the machine that trained the model means nothing on the Hub."""
    path = Path(file)
    return path.parent.name if path.parent.name not in ("", ".", "..") else path.stem


def push_to_hub_with_card(save_pretrained, config, repo_id: str, commit_message: str | None = None,
                          private: bool | None = None, token=None, revision: str | None = None,
                          create_pr: bool = False, **save_kwargs):  # fmt: skip
    """Save into a temporary folder, add the multigroup model card, upload it all in one commit.

    transformers' own push_to_hub writes a generic card over ours; this one carries the label schema.
    """
    from transformers.utils.hub import hf_api  # the Hub client transformers itself uses

    api = hf_api()
    repo_id = api.create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id
    with tempfile.TemporaryDirectory() as folder:
        save_pretrained(folder, **save_kwargs)
        (Path(folder) / "README.md").write_text(model_card(config, repo_id), encoding="utf-8")
        return api.upload_folder(
            repo_id=repo_id, folder_path=folder, commit_message=commit_message or "Upload multigroup model",
            token=token, revision=revision, create_pr=create_pr,
        )  # fmt: skip


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
    thresholds (one probability, or `{group: probability or per-label list}`); `batch_size=` sets how many texts
    go through the model at once (texts are grouped by length, so padding stays small). Texts longer than the
    model's maximum length are truncated.
    """

    window_batches = WINDOW_BATCHES  # texts read and sorted by length together, in batches
    read_ahead: int | None = None  # batches tokenized ahead in a background thread; None: READ_AHEAD off CPU, else 0

    def _sanitize_parameters(self, top_k=_UNSET, threshold=None, groups=None, max_length=None):
        postprocess = {}
        if top_k is not _UNSET:
            postprocess["top_k"] = top_k
        if threshold is not None:
            postprocess["threshold"] = threshold
        if groups is not None:
            postprocess["groups"] = groups
        if postprocess:  # fail before any text is encoded: decoding zero rows checks every argument
            self.model.config.decode(self._empty_logits(), **postprocess)
        preprocess = {"max_length": max_length} if max_length is not None else {}
        return preprocess, {}, postprocess

    def _empty_logits(self) -> torch.Tensor:
        return torch.zeros(0, self.model.config.num_columns)

    def __call__(self, inputs, **kwargs):
        if isinstance(inputs, str):
            return super().__call__(inputs, **kwargs)
        stream, sized = _as_stream(inputs)
        batch_size = kwargs.pop("batch_size", None)
        kwargs.pop("num_workers", None)  # transformers' DataLoader workers: a background thread tokenizes here
        batch_size = (self._batch_size or 1) if batch_size is None else batch_size
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}.")
        checked = {"top_k", "threshold", "groups", "max_length"}  # fail at the call, not at the first result
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
            start = 0
            while texts := _check_texts(list(islice(stream, window)), start):
                order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
                yield order, -(-len(texts) // batch_size)
                for s in range(0, len(texts), batch_size):
                    with lock:
                        inputs = self.preprocess([texts[i] for i in order[s : s + batch_size]], **preprocess_params)
                    yield inputs
                start += len(texts)

        items = _read_ahead(encoded(), batches_ahead(self.read_ahead, self.device))
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
        texts = [inputs] if isinstance(inputs, str) else _check_texts(inputs)
        encoded = self.tokenizer(
            texts, padding=True, truncation=True, max_length=max_length or self._max_length(), return_tensors="pt"
        )
        return {"model_inputs": dict(encoded), "single": isinstance(inputs, str)}

    def _forward(self, inputs: dict) -> dict:
        return {"logits": self.model(**inputs["model_inputs"]).logits, "single": inputs["single"]}

    def postprocess(self, outputs: dict, top_k: int | None = 1, threshold=None, groups=None) -> dict | list[dict]:
        rows = self.model.config.decode(outputs["logits"], top_k=top_k, threshold=threshold, groups=groups)
        return rows[0] if outputs["single"] else rows


if PIPELINE_TASK not in PIPELINE_REGISTRY.supported_tasks:
    PIPELINE_REGISTRY.register_pipeline(
        PIPELINE_TASK, pipeline_class=MultiGroupClassificationPipeline, pt_model=AutoModel, type="text"
    )
