"""`multigroup train`'s training settings: the ones the quality benchmark measured best, written once.

`multigroup train` starts from `TRAINING_DEFAULTS`; any `TrainingArguments` flag the user passes wins. The
benchmark's joint arm is the command itself (`scripts/bench_quality.py`), so the README's table is what a user
gets. A plain `Trainer` keeps `TrainingArguments`' own defaults; `training_arguments` gives a script these, and
`NEW_HEAD` the options `train` builds a new head with.

Examples:

```python
>>> from multigroup.defaults import training_arguments
>>> args, record = training_arguments(["--num_train_epochs", "2"], output_dir="out")
>>> args.learning_rate, args.warmup_steps, args.train_sampling_strategy, args.num_train_epochs
(0.0001, 0.06, 'group_by_length', 2.0)
>>> record["learning_rate"], record["from_defaults"]
(0.0001, ['learning_rate', 'train_sampling_strategy', 'warmup_steps'])

```
"""

# Measured with MiniLM, batch 8, 2 epochs, seeds 0-3 (scripts/bench_quality.py, README "Quality"): against a plain
# Trainer at TrainingArguments' defaults (5e-5, no warm-up, random batches; the model's own head rate), restaurants
# `polarity` macro-F1 0.533 vs 0.500 and `aspects` 0.610 vs 0.601; laptops within 0.016 on every group; training
# 61 s vs 97 s on restaurants (length-grouped batches pad less).
TRAINING_DEFAULTS = {
    "learning_rate": 1e-4,  # small encoders want more than the 5e-5 of base models
    "warmup_steps": 0.06,  # a fraction of the steps: the fresh head settles before the encoder moves fully
    "train_sampling_strategy": "group_by_length",
}

# The new head's own rate is 6e-3 on both paths. The model's default `head_multiplier` (120) gives it under a plain
# Trainer's 5e-5; `multigroup train` builds a new head with 60, for its 1e-4 (a saved head keeps its own). With 60
# under the plain path's 5e-5 (3e-3), laptops at batch 32 lost 0.011-0.034 macro-F1 on its three multilabel groups
# against 120 (four seeds, every seed; `python scripts/quality_tables.py scripts/results/head60/*.json`).
NEW_HEAD = {"head_multiplier": 60.0}

# What the training record keeps (`metrics.json`, the card): how the model was trained, in TrainingArguments' names.
RECORDED = (
    "num_train_epochs", "max_steps", "learning_rate", "warmup_steps", "lr_scheduler_type", "weight_decay",
    "per_device_train_batch_size", "gradient_accumulation_steps", "train_sampling_strategy", "seed",
)  # fmt: skip


def _given(extra: list[str]) -> set[str]:
    """The TrainingArguments names a command line sets (`--learning_rate 1e-4`, `--learning_rate=1e-4`)."""
    return {item[2:].split("=", 1)[0].replace("-", "_") for item in extra if item.startswith("--")}


def training_arguments(extra: list[str], output_dir: str, **fixed):
    """`TrainingArguments` from `TRAINING_DEFAULTS`, then `fixed` (the command's own choices, such as where
    checkpoints go), then the flags in `extra`, which win. Also returns the record of the settings used, with
    the names that came from `TRAINING_DEFAULTS` under `"from_defaults"`."""
    from transformers import HfArgumentParser, TrainingArguments

    given = _given(extra)
    settings = {**TRAINING_DEFAULTS, **fixed, "output_dir": output_dir}
    defaults = []
    for key, value in settings.items():
        defaults += [f"--{key}", str(value)]
    (args,) = HfArgumentParser(TrainingArguments).parse_args_into_dataclasses(defaults + list(extra))
    record = {key: _plain(getattr(args, key)) for key in RECORDED}
    record["train_batch_size"] = args.train_batch_size * max(args.gradient_accumulation_steps, 1)
    record["from_defaults"] = sorted(key for key in TRAINING_DEFAULTS if key not in given)
    return args, record


def _plain(value):
    """A JSON value: enums (`lr_scheduler_type`) by their value."""
    return getattr(value, "value", value)
