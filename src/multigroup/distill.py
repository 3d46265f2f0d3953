"""Distillation from one-model-per-group teachers with teacher annealing (BAM!, Clark et al., ACL 2019), opt-in.

The teachers are saved multigroup models (say, `multigroup train` on each group alone). Their probabilities on
the training texts are computed once; during training each target is `w * teacher + (1 - w) * gold`, `w` going
from 1 to 0 over the steps, so the joint model first learns what each single-task model knows, then the gold
labels. The combined loss already takes soft targets: cross-entropy over a distribution, BCE over probabilities.

`multigroup train --teachers DIR [DIR ...]` does it all; in Python:

```python
>>> import torch
>>> from multigroup.distill import TeacherMix
>>> mix = TeacherMix(lambda features: {"labels": torch.tensor([f["labels"] for f in features])}, columns=2)
>>> batch = mix([{"labels": [1.0, 0.0, 0.2, float("nan")]}])  # gold (1, 0), a teacher for the first column only
>>> mix.weight = 0.5
>>> mix([{"labels": [1.0, 0.0, 0.2, float("nan")]}])["labels"]
tensor([[0.6000, 0.0000]])

```
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from transformers import TrainerCallback

from .hub_code.configuration_multigroup import MultiGroupConfig


def teacher_targets(config: MultiGroupConfig, teachers: list, texts, batch_size: int = 64) -> np.ndarray:
    """(texts, columns) float32: each teacher's probabilities (a regression group's value) in the columns of the
    student's groups and labels it also has, nan where no teacher speaks. `teachers`: saved model folders, each
    with its tokenizer."""
    from transformers import AutoTokenizer

    from .auto import AutoModelForMultiGroupClassification
    from .inference import batched_logits

    targets = np.full((len(texts), config.num_columns), np.nan, dtype=np.float32)
    taught = {}
    for folder in teachers:
        if not (Path(folder) / "config.json").is_file():
            raise FileNotFoundError(
                f"--teachers {folder}: no saved model there; pass folders `multigroup train` wrote."
            )
        teacher = AutoModelForMultiGroupClassification.from_pretrained(folder).eval()
        shared = [group for group in teacher.config.groups if group["name"] in config.group_names]
        if not shared:
            raise ValueError(
                f"--teachers {folder}: its groups {teacher.config.group_names} share no name with the groups trained "
                f"here, {config.group_names}."
            )
        tokenizer = AutoTokenizer.from_pretrained(folder)
        logits = torch.from_numpy(batched_logits(teacher, tokenizer, texts, batch_size))
        for group in shared:
            name = group["name"]
            if name in taught:
                raise ValueError(f"Group `{name}` has two teachers, {taught[name]} and {folder}: give one per group.")
            taught[name] = folder
            student = config.group(name)
            if student["type"] != group["type"]:
                raise ValueError(f"Group `{name}` is {student['type']} here but {group['type']} in teacher {folder}.")
            scores = logits[:, teacher.config.group_slices[name]]
            if group["type"] == "multiclass":
                scores = scores.softmax(-1)
            elif group["type"] == "multilabel":
                scores = scores.sigmoid()
            start = config.group_slices[name].start
            labels = student["labels"] or [None]
            for j, label in enumerate(group["labels"] or [None]):
                if label in labels:
                    targets[:, start + labels.index(label)] = scores[:, j].numpy()
    return targets


class TeacherMix:
    """A data collator around another: the `labels` it gets hold each row's gold columns, then as many teacher
    columns (nan where no teacher speaks); it returns `labels` as `weight * teacher + (1 - weight) * gold`. A
    missing gold group (nan) stays missing."""

    def __init__(self, collator: Callable, columns: int, weight: float = 1.0):
        self.collator, self.columns, self.weight = collator, columns, weight

    def __call__(self, features: list[dict]) -> dict:
        batch = self.collator(features)
        if batch["labels"].shape[1] == self.columns:  # evaluation data: gold labels alone
            return batch
        gold, teacher = batch["labels"][:, : self.columns], batch["labels"][:, self.columns :]
        mixed = self.weight * teacher + (1 - self.weight) * gold
        batch["labels"] = torch.where(torch.isnan(teacher) | torch.isnan(gold), gold, mixed)
        return batch


class TeacherAnnealing(TrainerCallback):
    """Moves a `TeacherMix`'s weight from 1 to 0 linearly over the training steps (BAM!'s teacher annealing)."""

    def __init__(self, mix: TeacherMix):
        self.mix = mix

    def on_step_begin(self, args, state, control, **kwargs):
        self.mix.weight = max(0.0, 1.0 - state.global_step / max(state.max_steps, 1))


def with_teacher_columns(dataset, targets: np.ndarray):
    """The prepared dataset with each row's teacher columns after its gold `labels` (for `TeacherMix`)."""
    return dataset.map(
        lambda batch, indices: {"labels": [row + targets[i].tolist() for row, i in zip(batch["labels"], indices)]},
        batched=True,
        with_indices=True,
    )
