"""Writing the model card into a saved folder, and pushing that folder to the Hub (`multigroup push`)."""

import json
from pathlib import Path

from .configuration_multigroup import MultiGroupConfig


def write_model_card(model_dir: str | Path, repo_id: str | None = None) -> Path:
    """Write README.md into a saved model folder, with its metrics when `metrics.json` lies beside it."""
    model_dir = Path(model_dir)
    config = MultiGroupConfig.from_pretrained(model_dir)
    metrics_file = model_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text())["metrics"] if metrics_file.is_file() else None
    path = model_dir / "README.md"
    path.write_text(config.model_card(repo_id or model_dir.name, metrics), encoding="utf-8")
    return path


def push_folder(model_dir: str | Path, repo_id: str, private: bool = False, commit_message: str | None = None) -> str:
    """Upload a saved model folder (weights, config, code files, tokenizer, model card) to a Hub repo."""
    from huggingface_hub import HfApi

    model_dir = Path(model_dir)
    weights = ("model.safetensors", "model.safetensors.index.json")  # one file, or shards and their index
    missing = [name for name in ("config.json", "modeling_multigroup.py") if not (model_dir / name).is_file()]
    if not any((model_dir / name).is_file() for name in weights):
        missing.append(" or ".join(weights))
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
    return info.oid
