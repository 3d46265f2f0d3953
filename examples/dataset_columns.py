"""Every group's prediction as columns of a `datasets.Dataset`, in one `map` (the README's example).

    python examples/dataset_columns.py --model outputs/demo-model   # after `make demo`

The texts stream through the pipeline by batches (`batched=True`); `prediction_columns` turns its answers into
columns: a multiclass group's label and score, a multilabel group's list of labels (and their scores), a
regression group's value.
"""

import argparse
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="outputs/demo-model", help="a saved multigroup model folder")
    parser.add_argument("--data", default=str(HERE / "data" / "public_service_reviews.jsonl"))
    args = parser.parse_args()

    import datasets
    from transformers import pipeline

    from multigroup.inference import prediction_columns

    datasets.disable_progress_bars()
    clf = pipeline("multi-group-classification", model=args.model, trust_remote_code=True)
    ds = datasets.load_dataset("json", data_files=args.data, split="train").select_columns(["text"])
    predict = lambda batch: prediction_columns(clf(batch["text"], batch_size=32))  # noqa: E731
    ds = ds.map(predict, batched=True, batch_size=256, new_fingerprint="predictions")  # (no hashing of the model)
    print(ds)
    print({name: str(feature) for name, feature in ds.features.items()})
    short = lambda x: round(x, 3) if isinstance(x, float) else [short(v) for v in x] if isinstance(x, list) else x  # noqa: E731
    for row in ds.select(range(2)):
        print({key: short(value) for key, value in row.items()})


if __name__ == "__main__":
    main()
