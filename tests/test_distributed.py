"""DDP on CPU: `torchrun --nproc_per_node 2` runs the plain Trainer with the same loss scale as one process."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import make_trainer

from conftest import ARTICLE_GROUPS, tiny_model

TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not installed")
def test_torchrun_two_processes_same_loss_scale_and_missing_groups(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TRANSFORMERS_VERBOSITY": "error", "HF_HUB_OFFLINE": "1"}
    script = Path(__file__).with_name("ddp_train.py")
    completed = subprocess.run(
        [TORCHRUN, "--standalone", "--nproc_per_node", "2", str(script), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-4000:]
    result = json.loads((tmp_path / "result.json").read_text())

    single = make_trainer(tmp_path / "single", tiny_model(ARTICLE_GROUPS, hidden_dropout_prob=0.0,
                          attention_probs_dropout_prob=0.0), batch_size=4, epochs=1, lr=0.0).train()  # fmt: skip
    distributed = result["all_groups"]
    assert distributed["world_size"] == 2 and len(distributed["logs"]) == 4  # 16 rows / (2 per device x 2)
    # every row seen once, equal batch sizes: the mean of the step losses is the mean over all rows in both runs
    assert distributed["train_loss"] == pytest.approx(single.training_loss, rel=1e-5)

    missing = result["causes_mostly_missing"]
    assert all(math.isfinite(entry["loss"]) for entry in missing["logs"])
    assert all("loss_causes" in entry and math.isfinite(entry["loss_causes"]) for entry in missing["logs"])
    assert any(entry["loss_causes"] < distributed["logs"][i]["loss_causes"] for i, entry in enumerate(missing["logs"]))
