"""The model card (README.md for the Hub: the label schema, how the model was trained, its scores and usage) and the
push that uploads it with the model in one commit.

This file travels with saved models: it imports only the standard library and transformers.
"""

import json
import tempfile
from pathlib import Path

from .versions_multigroup import MINIMUM_TRANSFORMERS, is_hub_id

PIPELINE_TASK = "multi-group-classification"


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
    for relation in getattr(config, "relations", None) or []:
        if relation is config.relations[0]:
            lines += ["", "Relations kept by every prediction (no label without what it implies):", ""]
        if "compose" in relation:
            parts, composed = " and ".join(f"`{cell(name)}`" for name in relation["of"]), cell(relation["compose"])
            lines.append(f"- each `{composed}` label joins a label of {parts} with `{cell(relation['separator'])}`, "
                         f"and implies them; those hold only with one of their `{composed}` labels")  # fmt: skip
        else:
            lines.append(f"- `{cell(relation['if'])}` implies {', '.join(f'`{cell(r)}`' for r in relation['then'])}")
    classifying = [group for group in config.groups if group["type"] != "regression"]
    calibrated = [group for group in classifying if group.get("temperature") is not None]
    if calibrated:
        fitted = ", ".join(f"`{cell(group['name'])}` {group['temperature']:g}" for group in calibrated)
        lines += ["", f"Scores are calibrated: each group's logits are divided by its temperature ({fitted}), fitted "
                  "on the validation data; `ece` (expected calibration error of the top score) and `brier` below "
                  "say how far a score can be trusted on each evaluation's data."]  # fmt: skip
    elif classifying:
        lines += ["", "Scores are the raw softmax and sigmoid outputs (no temperature fitted): check each group's "
                  "`ece` and `brier` below before thresholding on them."]  # fmt: skip
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
