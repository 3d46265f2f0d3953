"""Training time of the joint model: this checkout's defaults against an earlier multigroup's recipe, same data.

    git worktree add /tmp/multigroup-0.1.0 322fd7c
    python scripts/bench_train_time.py --data-dir ../shared/data/semeval16_absa_rest_en --old-src /tmp/multigroup-0.1.0/src

Each arm trains MiniLM on the training file for the same epochs and batch size, in its own process (so each imports
its own multigroup), interleaved, REPEATS times; prints the median seconds of `Trainer.train()` and the ratio.
The old arm uses 0.1.0's recipe: `loss_weighting="normalized"` + `fit_loss_scales`, `build_optimizer` with a 3e-3
head rate; the new arm uses the model's defaults and Trainer's own optimizer.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from _harness import interleaved, minilm_path

EPOCHS = 1
BATCH_SIZE = 8
LEARNING_RATE = 1e-4
REPEATS = 2

CHILD = """
import json, sys, time
import numpy as np
from transformers import AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments, set_seed
from transformers.utils import logging
from multigroup import AutoModelForMultiGroupClassification
from multigroup.data import infer_groups, load_table, prepare_dataset
logging.set_verbosity_error()
old, data_file, epochs, batch, lr, encoder = sys.argv[1] == "old", sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
table = load_table(data_file)
groups = infer_groups(table, multiclass=["polarity"], multilabel=[k for k, v in table[0].items() if isinstance(v, list)])
set_seed(0)
tokenizer = AutoTokenizer.from_pretrained(encoder)
options = {"pooling": "mean", "loss_weighting": "normalized"} if old else {}
model = AutoModelForMultiGroupClassification.from_pretrained(encoder, groups=groups, **options)
train = prepare_dataset(table, tokenizer, model.config, max_length=128)
optimizers = (None, None)
if old:
    from multigroup.training import build_optimizer, fit_loss_scales
    fit_loss_scales(model.config, np.array(train["labels"], dtype=np.float32))
    optimizers = (build_optimizer(model, lr, 3e-3), None)
args = TrainingArguments("/tmp/bench_train_time", num_train_epochs=epochs, per_device_train_batch_size=batch,
    learning_rate=lr, warmup_steps=0.06, train_sampling_strategy="group_by_length", save_strategy="no",
    report_to=[], logging_strategy="no", seed=0, use_cpu=True, disable_tqdm=True)
trainer = Trainer(model, args, train_dataset=train, data_collator=DataCollatorWithPadding(tokenizer), optimizers=optimizers)
start = time.perf_counter()
trainer.train()
import multigroup
print(json.dumps({"seconds": time.perf_counter() - start, "multigroup": multigroup.__file__}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--old-src", required=True, help="the src/ folder of the earlier multigroup")
    args = parser.parse_args()
    data_file = str(Path(args.data_dir) / "train.jsonl")
    knobs = [data_file, str(EPOCHS), str(BATCH_SIZE), str(LEARNING_RATE), minilm_path()]

    def train(arm: str) -> float:
        env = dict(os.environ, PYTHONPATH=str(Path(args.old_src).resolve())) if arm == "old" else dict(os.environ)
        done = subprocess.run(
            [sys.executable, "-c", CHILD, arm, *knobs], env=env, capture_output=True, text=True, check=True
        )
        result = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{arm}: {result['seconds']:.1f} s ({result['multigroup']})", flush=True)
        return result["seconds"]

    arms = {arm: lambda arm=arm: train(arm) for arm in ("old", "new")}
    times = interleaved(arms, REPEATS, warmup=0, measure=lambda run: run())
    old, new = statistics.median(times["old"]), statistics.median(times["new"])
    print(
        f"median train seconds, {EPOCHS} epoch(s), batch {BATCH_SIZE}: old {old:.1f}, new {new:.1f}, ratio {new / old:.3f}"
    )


if __name__ == "__main__":
    main()
