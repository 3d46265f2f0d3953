"""What several commands share: loading a saved model with its tokenizer, and a labelled file's logits."""

import json
from pathlib import Path


def load_model(model_dir: str):
    from transformers import AutoTokenizer
    from transformers.utils import logging

    from ..auto import AutoModelForMultiGroupClassification

    logging.set_verbosity_error()
    if not (Path(model_dir) / "config.json").is_file() and Path(model_dir).exists():
        raise FileNotFoundError(f"{model_dir} holds no config.json: pass the folder a model was saved to.")
    return AutoModelForMultiGroupClassification.from_pretrained(model_dir).eval(), AutoTokenizer.from_pretrained(
        model_dir
    )


def labelled_logits(model, tokenizer, path: str, text_column: str, batch_size: int, ignore_unknown_labels: bool):
    """Logits and label rows for a labelled file; errors name the row, the column or the line."""
    import numpy as np

    from ..data import load_table, prepare_dataset
    from ..inference import batched_logits

    table = load_table(path)
    encoded = prepare_dataset(table, tokenizer, model.config, text_column, ignore_unknown_labels=ignore_unknown_labels)
    labels = np.array(encoded["labels"], dtype=np.float32)
    return batched_logits(model, tokenizer, table[text_column], batch_size, progress=True), labels


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
