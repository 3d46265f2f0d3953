"""The model card, and pushing a saved model folder to the Hub with it."""

import json
from pathlib import Path

from .configuration_multigroup import MultiGroupConfig

_CARD_METRICS = ("f1_micro", "f1_macro", "mean_f1_macro")


def _yaml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid YAML scalar, quotes and all escaped


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


def model_card(config: MultiGroupConfig, repo_id: str = "your-name/your-model", metrics: dict | None = None) -> str:
    """A README.md with Hub metadata, the label schema of every group, and a usage snippet."""
    base_model = getattr(config, "base_model", None) or None
    lines = ["---", "library_name: transformers", "pipeline_tag: text-classification", "tags:"]
    lines += [f"- {tag}" for tag in ("multigroup", "custom_code", "multi-label-classification", "text-classification")]
    if base_model:
        lines.append(f"base_model: {_yaml_string(base_model)}")
    if metrics:
        lines += ["model-index:", f"- name: {_yaml_string(repo_id)}", "  results:", "  - task:",
                  "      type: text-classification", "    metrics:"]  # fmt: skip
        for key in _CARD_METRICS:
            if key in metrics:
                lines += [f"    - type: {key}", f"      value: {round(float(metrics[key]), 4)}"]
    lines += ["---", "", f"# {_cell(repo_id)}", ""]
    lines += [
        f"One `{config.encoder_type}` encoder that predicts {len(config.groups)} label groups at once, trained with "
        "[multigroup](https://pypi.org/project/multigroup/)."
        + (f" Base model: `{_cell(base_model)}`." if base_model else ""),
        "",
        "## Label groups",
        "",
        "| group | type | labels | weight |",
        "|---|---|---|---|",
    ]
    for group in config.groups:
        labels = ", ".join(f"`{_cell(label)}`" for label in group["labels"]) or "(a number)"
        lines.append(f"| `{_cell(group['name'])}` | {group['type']} | {labels} | {group['weight']} |")
    if metrics:
        lines += ["", "## Evaluation", "", "| metric | value |", "|---|---|"]
        lines += [
            f"| {_cell(key)} | {value:.4f} |" for key, value in sorted(metrics.items()) if isinstance(value, float)
        ]
    lines += [
        "",
        "## Usage",
        "",
        "No install beyond `transformers>=5`; the model's code ships in this repo. Read it, and pin the commit you "
        "read with `revision=`.",
        "",
        "```python",
        "from transformers import pipeline",
        "",
        f'clf = pipeline("multi-group-classification", model={_yaml_string(repo_id)}, trust_remote_code=True)',
        'clf("Your text here")',
        "```",
        "",
    ]
    return "\n".join(lines)


def write_model_card(model_dir: str | Path, repo_id: str | None = None) -> Path:
    """Write README.md into a saved model folder, with its metrics when `metrics.json` lies beside it."""
    model_dir = Path(model_dir)
    config = MultiGroupConfig.from_pretrained(model_dir)
    metrics_file = model_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text())["metrics"] if metrics_file.is_file() else None
    path = model_dir / "README.md"
    path.write_text(model_card(config, repo_id or model_dir.name, metrics), encoding="utf-8")
    return path


def push_folder(model_dir: str | Path, repo_id: str, private: bool = False, commit_message: str | None = None) -> str:
    """Upload a saved model folder (weights, config, code files, tokenizer, model card) to a Hub repo."""
    from huggingface_hub import HfApi

    model_dir = Path(model_dir)
    missing = [
        name
        for name in ("config.json", "model.safetensors", "modeling_multigroup.py")
        if not (model_dir / name).is_file()
    ]
    if missing:
        raise FileNotFoundError(f"{model_dir} is not a saved multigroup model: {missing} missing. Save it first.")
    write_model_card(model_dir, repo_id)
    api = HfApi()
    api.create_repo(repo_id, private=private, exist_ok=True)
    info = api.upload_folder(
        repo_id=repo_id,
        folder_path=str(model_dir),
        commit_message=commit_message or "Upload multigroup model",
        ignore_patterns=["checkpoint-*", "checkpoints/*", "*.png", "runs/*"],
    )
    return info.oid if hasattr(info, "oid") else str(info)
