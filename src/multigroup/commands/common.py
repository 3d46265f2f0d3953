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
    model = AutoModelForMultiGroupClassification.from_pretrained(model_dir).eval()
    return model, AutoTokenizer.from_pretrained(model_dir)


def add_labelled_file_arguments(parser, file_help: str) -> None:
    """The arguments of commands that score a saved model on a labelled file."""
    parser.add_argument("--model", required=True, help="a saved multigroup model folder")
    parser.add_argument("--file", required=True, help=file_help)
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--ignore-unknown-labels", action="store_true", help="drop labels the model does not know")


def labelled_logits(args):
    """The model, and its logits and label rows for `args.file`; errors name the row, the column or the line."""
    import numpy as np

    from ..data import load_table, prepare_dataset
    from ..inference import batched_logits

    model, tokenizer = load_model(args.model)
    table = load_table(args.file)
    encoded = prepare_dataset(
        table, tokenizer, model.config, args.text_column, ignore_unknown_labels=args.ignore_unknown_labels
    )
    logits = batched_logits(model, tokenizer, table[args.text_column], args.batch_size, progress=True)
    return model, logits, np.array(encoded["labels"], dtype=np.float32)


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
