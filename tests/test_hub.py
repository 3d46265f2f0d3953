"""A real huggingface_hub client against a local Hub stand-in: push, then pull without multigroup."""

import json

import pytest
import yaml

from hub_server import LocalHub

from conftest import REPO_ROOT, run_python

PUSH = """
import sys
sys.path.insert(0, {tests!r})
from conftest import make_tokenizer, tiny_model
from transformers import pipeline
model = tiny_model()
model.config.base_model = "almanach/camembert-base"
model.push_to_hub("tester/model-only", token="hf_test")
clf = pipeline("multi-group-classification", model=model, tokenizer=make_tokenizer())
info = clf.push_to_hub("tester/with-pipeline", token="hf_test", commit_message="first push")
print("COMMIT" + info.oid)
"""

PULL = """
import json, sys
from transformers import AutoModel, pipeline
model = AutoModel.from_pretrained("tester/model-only", trust_remote_code=True)
clf = pipeline("multi-group-classification", model="tester/with-pipeline", revision=sys.argv[1] if len(sys.argv) > 1
               else "main", trust_remote_code=True)
print("RESULT" + json.dumps({"model": type(model).__name__, "prediction": clf("the food was great"),
                             "multigroup": "multigroup" in sys.modules}))
"""


@pytest.fixture
def hub(tmp_path):
    with LocalHub() as hub:
        hub.env = {"HF_ENDPOINT": hub.endpoint, "HF_HUB_OFFLINE": "0", "HF_TOKEN": "hf_test",
                   "HF_HUB_CACHE": str(tmp_path / "cache"), "HF_MODULES_CACHE": str(tmp_path / "modules"),
                   "HF_HUB_DISABLE_XET": "1"}  # fmt: skip
        yield hub
        assert hub.state.unhandled == []


def test_push_then_pull_through_a_real_hub_client(hub, tmp_path):
    import subprocess
    import sys

    push = subprocess.run(
        [sys.executable, "-c", PUSH.format(tests=str(REPO_ROOT / "tests"))],
        env={**__import__("os").environ, **hub.env}, capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert push.returncode == 0, push.stderr[-3000:]
    commit = push.stdout.split("COMMIT")[-1].strip()

    files = hub.state.repos["tester/with-pipeline"]["files"]
    assert {"config.json", "model.safetensors", "modeling_multigroup.py", "pipeline_multigroup.py",
            "configuration_multigroup.py", "tokenizer.json", "README.md"} <= set(files)  # fmt: skip
    assert "tokenizer.json" not in hub.state.repos["tester/model-only"]["files"]
    card = files["README.md"].decode()
    metadata = yaml.safe_load(card.split("---")[1])
    assert metadata["library_name"] == "transformers" and "custom_code" in metadata["tags"]
    assert metadata["base_model"] == "almanach/camembert-base"
    assert (
        "| `causes` | multilabel |" in card
        and 'pipeline("multi-group-classification", model="tester/with-pipeline"' in card
    )

    pull = run_python(PULL, cwd=tmp_path, env=hub.env)
    assert pull.returncode == 0, pull.stderr[-3000:]
    result = json.loads(pull.stdout.split("RESULT")[-1])
    assert result["model"] == "CamembertForMultiGroupClassification" and result["multigroup"] is False
    assert list(result["prediction"]) == ["global_score", "emotions", "causes"]
    assert len(commit) == 40


def test_cli_push_writes_the_card_with_metrics(hub, tmp_path, saved_article_model):
    import os
    import subprocess
    import sys

    (saved_article_model / "metrics.json").write_text(
        json.dumps({"metrics": {"f1_micro": 0.5, "mean_f1_macro": 0.25}})
    )
    command = ["push", "--model", str(saved_article_model), "--repo-id", "tester/cli"]
    completed = subprocess.run(
        [sys.executable, "-m", "multigroup.cli", *command],
        env={**os.environ, **hub.env}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    card = hub.state.repos["tester/cli"]["files"]["README.md"].decode()
    metadata = yaml.safe_load(card.split("---")[1])
    assert metadata["model-index"][0]["results"][0]["metrics"] == [
        {"type": "f1_micro", "value": 0.5},
        {"type": "mean_f1_macro", "value": 0.25},
    ]
    assert "revision=" in completed.stdout and "metrics.json" in hub.state.repos["tester/cli"]["files"]
