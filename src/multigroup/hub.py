"""Writing the model card into a saved folder, and pushing that folder to the Hub (`multigroup push`)."""

import json
import os
from pathlib import Path

from .hub_code.card_multigroup import model_card
from .hub_code.configuration_multigroup import MultiGroupConfig


def split_name(file: str | Path) -> str:
    """The split a file holds, from its name: `test`, `validation`, `train`, or the file's own stem."""
    stem = Path(file).stem.lower()
    for split, hints in (("test", ("test",)), ("validation", ("valid", "dev", "val")), ("train", ("train",))):
        if any(hint in stem for hint in hints):
            return split
    return Path(file).stem


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one file (`data/x.jsonl` and `./data/x.jsonl` do); plain comparison if either is gone."""
    try:
        return Path(a).samefile(b)
    except OSError:  # a recorded name (`shown_path`) against a path given now
        return shown_path(a) == shown_path(b)


def shown_path(file: str | Path) -> str:
    """How a data file is named in `metrics.json` and the card: as given, but never as an absolute path (it would
    publish this machine's folders): relative to the working directory when inside it, else its last two parts."""
    if not os.path.isabs(file):
        return str(Path(file))
    relative = os.path.relpath(file)
    return relative if not relative.startswith("..") else str(Path(*Path(file).parts[-2:]))


def read_evaluations(model_dir: str | Path) -> list[dict]:
    """The evaluations recorded in a model folder's `metrics.json`, held-out ones first (0.1.0 files included)."""
    path = Path(model_dir) / "metrics.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    if "evaluations" in data:
        return data["evaluations"]
    if "metrics" not in data:  # the training record alone
        return []
    # multigroup 0.1.0 wrote the validation scores of `train`, with thresholds tuned on that same file
    file = data.get("file") or "validation data"
    return [{"file": file, "split": split_name(file), "used_for": ["thresholds"], "metrics": data["metrics"]}]


def record_evaluation(model_dir: str | Path, evaluation: dict, keep_others: bool = True) -> list[dict]:
    """Add (or replace, for the same file) one evaluation in `metrics.json`, then rewrite the model card.

    `evaluation`: `{"file", "split", "used_for": ["thresholds", ...], "metrics": {...}}`. `keep_others=False` drops
    the earlier ones (after new thresholds, their scores no longer describe the model). The file keeps the lead
    evaluation's `file` and `metrics` at the top, as 0.1.0 wrote them.
    """
    evaluation = {**evaluation, "file": shown_path(evaluation["file"])}
    earlier = read_evaluations(model_dir) if keep_others else []
    others = [e for e in earlier if not same_file(e["file"], evaluation["file"])]
    evaluations = sorted([evaluation, *others], key=lambda e: bool(e.get("used_for")))  # held-out first
    lead = evaluations[0]
    data = {"file": lead["file"], "split": lead["split"], "metrics": lead["metrics"], "evaluations": evaluations}
    _write_metrics(model_dir, data)
    return evaluations


def read_training(model_dir: str | Path) -> dict | None:
    """How the model was trained, as `multigroup train` recorded it in `metrics.json` (None if it did not)."""
    path = Path(model_dir) / "metrics.json"
    return json.loads(path.read_text(encoding="utf-8")).get("training") if path.is_file() else None


def record_training(model_dir: str | Path, training: dict) -> None:
    """Start a trained model's `metrics.json` with how it was trained (`{"encoder", "train_file",
    "learning_rate", ...}`; later evaluations keep it), and rewrite the card, which shows it."""
    training = {**training, **{key: shown_path(training[key]) for key in FILE_KEYS if training.get(key)}}
    _write_metrics(model_dir, {}, training)


FILE_KEYS = ("train_file", "validation_file", "encoder")  # paths on this machine, shown as `shown_path` names them


def _write_metrics(model_dir: str | Path, data: dict, training: dict | None = None) -> None:
    """Write `metrics.json` (the training record kept unless a new one is given), then the card."""
    path = Path(model_dir) / "metrics.json"
    training = training or read_training(model_dir)
    data = {**data, "training": training} if training else data
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    write_model_card(model_dir)


def write_model_card(model_dir: str | Path, repo_id: str | None = None) -> Path:
    """Write README.md into a saved model folder, with the evaluations recorded in `metrics.json` beside it."""
    model_dir = Path(model_dir)
    config = MultiGroupConfig.from_pretrained(model_dir)
    path = model_dir / "README.md"
    card = model_card(config, repo_id, read_evaluations(model_dir), read_training(model_dir))
    path.write_text(card, encoding="utf-8")
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
