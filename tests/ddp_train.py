"""Run by tests/test_distributed.py under `torchrun --nproc_per_node 2` (gloo, CPU): a plain Trainer, twice.

`ddp_find_unused_parameters=False`: DDP then fails if a step leaves any parameter without a gradient, which is
what a group missing from a process's batch would do without the loss's zero-weighted gradient path.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from helpers import make_trainer  # noqa: E402
from multigroup.training import GroupLossCallback  # noqa: E402

from conftest import ARTICLE_GROUPS, tiny_model  # noqa: E402

NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


def run(work: Path, rows_with_causes: int | None) -> dict:
    trainer = make_trainer(work, tiny_model(ARTICLE_GROUPS, **NO_DROPOUT), batch_size=2, epochs=1, lr=0.0,
                           ddp_backend="gloo", ddp_find_unused_parameters=False)  # fmt: skip
    if rows_with_causes is not None:  # "causes" missing from most rows: some processes' batches lack it

        def drop(row, index):
            return {
                "labels": row["labels"][:15]
                + ([float("nan")] * 12 if index >= rows_with_causes else row["labels"][15:])
            }

        trainer.train_dataset = trainer.train_dataset.map(drop, with_indices=True)
    trainer.callback_handler.callbacks.insert(0, GroupLossCallback())
    output = trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    return {"train_loss": output.training_loss, "world_size": trainer.args.world_size, "logs": logs}


if __name__ == "__main__":
    work = Path(sys.argv[1])
    results = {"all_groups": run(work / "a", None), "causes_mostly_missing": run(work / "b", 2)}
    if int(__import__("os").environ.get("RANK", 0)) == 0:
        (work / "result.json").write_text(json.dumps(results))
