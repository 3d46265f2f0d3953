"""Training helpers around a plain Trainer: per-group loss logging, the evaluation table, loss balancing, class
weights and threshold tuning. Statistics come from label rows (`config.encode_labels`), never from a preliminary run.

Examples:

```python
>>> import numpy as np
>>> from multigroup import MultiGroupConfig
>>> from multigroup.training import fit_loss_scales
>>> config = MultiGroupConfig(groups=[{"name": "topics", "type": "multilabel", "labels": ["a", "b"]}])
>>> labels = np.array([[1, 0], [0, 0], [0, 0], [0, 1]], dtype=np.float32)
>>> fit_loss_scales(config, labels)  # mean binary entropy of the label frequencies (0.25, 0.25)
{'topics': 0.5623...}

```
"""

import numpy as np
import torch
from transformers import TrainerCallback

from .hub_code.configuration_multigroup import MultiGroupConfig
from .metrics import format_metrics_table
from .thresholds import DEFAULT_RULE, choose_thresholds

_MIN_SCALE = 0.05  # a group whose labels are (almost) always the same would otherwise get an unbounded weight


def _present(config: MultiGroupConfig, labels: np.ndarray):
    labels = np.asarray(labels, dtype=np.float64)
    for group, columns in zip(config.groups, config.group_slices.values()):
        target = labels[:, columns]
        yield group, target[~np.isnan(target).any(axis=1)]


def build_optimizer(
    model, learning_rate: float, head_learning_rate: float | None = None, weight_decay: float = 0.0
) -> torch.optim.AdamW:
    """AdamW with an explicit learning rate for the new head, for `Trainer(optimizers=(opt, None))`.

    Rarely needed: the head already moves `config.head_multiplier` (120 for a new model, 60 under `multigroup
    train`) times faster than the encoder under any optimizer, Trainer's default included, because a fresh head
    needs a much higher rate than a pretrained encoder (0.1.0's quality benchmark, SemEval-2016 aspects, MiniLM, 5
    epochs, test micro-F1: 0.317 with one rate of 1e-4 and no multiplier, 0.694 with a 3e-3 head).
    `head_learning_rate` is the rate the head's weights themselves move at; None keeps the multiplier's. Trainer's
    scheduler scales both rates alike.
    """
    multiplier = getattr(model.config, "head_multiplier", 1.0)
    trainable = [(name, param) for name, param in model.named_parameters() if param.requires_grad]  # LoRA: adapters
    head = [param for name, param in trainable if "classifier" in name.split(".")]  # also inside a PEFT wrapper
    body = [param for name, param in trainable if "classifier" not in name.split(".")]
    head_rate = learning_rate if head_learning_rate is None else head_learning_rate / multiplier
    groups = [{"params": body, "lr": learning_rate}, {"params": head, "lr": head_rate}]
    return torch.optim.AdamW(groups, lr=learning_rate, weight_decay=weight_decay)


def fit_loss_scales(config: MultiGroupConfig, labels: np.ndarray, apply: bool = True) -> dict[str, float]:
    """Each group's loss for an uninformed prediction (the training label frequencies, or the mean value).

    The model divides each group's loss by this scale (every weighting but `"fixed"`), so every group's loss
    starts at about 1 whatever its type, number of labels or rarity. Under the default `"balanced"` weighting the
    gradients are balanced anyway and the scales only make the logged losses comparable. `apply=True` stores the
    scales in the config and switches a `"fixed"` config to `"normalized"`.
    """
    scales = {}
    for group, target in _present(config, labels):
        if not len(target):
            scale = 1.0
        elif group["type"] == "regression":
            scale = float(target[:, 0].var())
        else:
            p = np.clip(target.mean(0), 1e-6, 1 - 1e-6)
            if group["type"] == "multiclass":
                scale = float(-(p * np.log(p)).sum())
            else:
                scale = float(np.mean(-(p * np.log(p) + (1 - p) * np.log(1 - p))))
        scales[group["name"]] = max(scale, _MIN_SCALE)
    if apply:
        for group in config.groups:
            group["loss_scale"] = scales[group["name"]]
        if config.loss_weighting == "fixed":
            config.loss_weighting = "normalized"
    return scales


def fit_label_priors(config: MultiGroupConfig, labels: np.ndarray, apply: bool = True) -> dict[str, list[float]]:
    """Each group's `prior` from training label rows: every label's frequency (multiclass and multilabel), or the
    mean target (regression), over the rows that carry the group. The head starts each column's logit there
    (`spec_multigroup.prior_offsets`). `prepare_dataset` calls this on the first data it encodes for a new head
    (`config.fit_priors`); `apply=True` stores the priors and turns `fit_priors` off.

    Examples:

    ```python
    >>> import numpy as np
    >>> from multigroup import MultiGroupConfig
    >>> from multigroup.training import fit_label_priors
    >>> config = MultiGroupConfig(groups=[{"name": "topics", "type": "multilabel", "labels": ["a", "b"]}])
    >>> fit_label_priors(config, np.array([[1, 0], [0, 0], [0, 0], [0, 1]], dtype=np.float32))
    {'topics': [0.25, 0.25]}
    >>> config.fit_priors
    False

    ```
    """
    priors = {}
    for group, target in _present(config, labels):
        if len(target):
            priors[group["name"]] = [round(float(v), 6) for v in target.mean(0)]
    if apply:
        for group in config.groups:
            if group["name"] in priors:
                group["prior"] = priors[group["name"]]
        config.fit_priors = False
    return priors


def fit_class_weights(
    config: MultiGroupConfig, labels: np.ndarray, max_weight: float = 20.0, apply: bool = True
) -> dict[str, list[float]]:
    """Loss weights against class imbalance, from training frequencies.

    Multiclass: `class_weight = n / (k * count)` (scikit-learn's "balanced"). Multilabel: `pos_weight =
    negatives / positives`. Both clipped to `[1 / max_weight, max_weight]`; a label never seen gets `max_weight`.
    """
    weights = {}
    for group, target in _present(config, labels):
        if group["type"] == "regression" or not len(target):
            continue
        positives = target.sum(0)
        numerator = len(target) / len(group["labels"]) if group["type"] == "multiclass" else len(target) - positives
        raw = np.divide(numerator, positives, where=positives > 0, out=np.full_like(positives, max_weight))
        weights[group["name"]] = [float(w) for w in np.clip(raw, 1 / max_weight, max_weight)]
    if apply:
        for group in config.groups:
            if group["name"] in weights:
                group["class_weight" if group["type"] == "multiclass" else "pos_weight"] = weights[group["name"]]
    return weights


def tune_thresholds(
    config: MultiGroupConfig,
    logits: np.ndarray,
    labels: np.ndarray,
    grid: np.ndarray | None = None,
    per_label: bool | None = None,
    apply: bool = True,
) -> dict[str, list[float]]:
    """Multilabel thresholds from validation data: by default the `"shrunk"` rule; `per_label=True` each label's
    own best, `per_label=False` one per group. `multigroup.thresholds.choose_thresholds` names every rule."""
    rule = {None: DEFAULT_RULE, True: "per_label", False: "per_group"}[per_label]
    return choose_thresholds(config, logits, labels, rule=rule, grid=grid, apply=apply)


class GroupLossCallback(TrainerCallback):
    """Adds `loss_{group}` (mean since the last log, over all processes) to the Trainer's training logs.

    A batch in which a group is missing adds 0 to that group's mean, as it does to the training loss.

    A forward hook collects `output.group_losses` during training steps. Put it first so that the printed line
    and the reporting integrations see the values: `trainer.callback_handler.callbacks.insert(0, callback)`, or
    `attach_callbacks(trainer)`.
    """

    def __init__(self):
        self._sums, self._steps, self._handle = None, 0, None

    def _hook(self, module, args, output):
        losses = getattr(output, "group_losses", None)
        if module.training and losses:
            values = torch.stack([value.detach().float() for value in losses.values()])
            self._sums = values if self._sums is None else self._sums + values
            self._steps += 1

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is not None and self._handle is None:
            self._handle = model.register_forward_hook(self._hook)

    def on_train_end(self, args, state, control, **kwargs):
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        if logs is None or "loss" not in logs or self._sums is None or model is None:
            return
        totals = torch.cat([self._sums, torch.tensor([float(self._steps)], device=self._sums.device)])
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(totals)
        means = (totals[:-1] / totals[-1]).tolist()
        entries = {f"loss_{name}": round(value, 4) for name, value in zip(model.config.group_names, means)}
        logs.update(entries)
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(entries)
        self._sums, self._steps = None, 0


class MetricsTableCallback(TrainerCallback):
    """Prints the per-group metrics table after each evaluation (needs `build_compute_metrics` in the Trainer)."""

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        if metrics and model is not None and state.is_world_process_zero:
            epoch = f"epoch {state.epoch:.2f}, " if state.epoch is not None else ""
            table = format_metrics_table(metrics, model.config, "eval_")
            print(f"\nEvaluation ({epoch}step {state.global_step})\n{table}")


def attach_callbacks(trainer) -> None:
    """Log `loss_{group}` in every training log line and print the per-group table at each evaluation."""
    trainer.callback_handler.callbacks.insert(0, GroupLossCallback())
    trainer.add_callback(MetricsTableCallback())
