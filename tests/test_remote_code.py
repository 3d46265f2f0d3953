"""Hub-native save and load: a process without multigroup loads the folder through `trust_remote_code`."""

import json
import shutil

import torch
from safetensors.torch import save_file

from multigroup import AutoModelForMultiGroupClassification
from multigroup.hub_code.modeling_multigroup import CODE_FILES
from multigroup.spec_multigroup import DEFAULT_THRESHOLD

from conftest import TEXTS, encode, make_tokenizer, run_python

CHECK_REMOTE = """
import json, sys
import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForSequenceClassification, pipeline

source = sys.argv[1] if len(sys.argv) > 1 else "{source}"
ref = load_file("reference.safetensors")
inputs = {{k: v for k, v in ref.items() if k != "logits"}}
result = {{}}
for auto in (AutoModel, AutoModelForSequenceClassification):
    model = auto.from_pretrained(source, trust_remote_code=True).eval()
    with torch.no_grad():
        result[auto.__name__] = torch.equal(model(**inputs).logits, ref["logits"])
clf = pipeline("multi-group-classification", model=source, trust_remote_code=True)
result["single"] = clf("the food was great")
result["batch"] = clf(["i love it", "slow rude staff and bad service", "the food was great"], batch_size=2)
result["all_scores"] = clf("i love it", top_k=None, groups=["emotions"])
clf.save_pretrained("resaved")
again = pipeline("multi-group-classification", model="resaved", trust_remote_code=True)
result["resaved_equal"] = again("i love it") == clf("i love it")
result["multigroup_imported"] = "multigroup" in sys.modules
print("RESULT" + json.dumps(result))
"""


def _reference(model_dir, workdir):
    model = AutoModelForMultiGroupClassification.from_pretrained(model_dir).eval()
    inputs = encode(make_tokenizer(), TEXTS)
    with torch.no_grad():
        logits = model(**inputs).logits
    save_file({**inputs, "logits": logits.contiguous()}, workdir / "reference.safetensors")


def _result(completed):
    assert completed.returncode == 0, completed.stderr[-3000:]
    line = [line for line in completed.stdout.splitlines() if line.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT") :])


def _check(result):
    assert result["AutoModel"] and result["AutoModelForSequenceClassification"], "logits differ after reload"
    assert result["multigroup_imported"] is False
    single = result["single"]
    assert list(single) == ["global_score", "emotions", "causes"]
    assert set(single["global_score"]) == {"label", "score"} and single["global_score"]["label"] in {
        "S1",
        "S2",
        "S3",
        "S4",
        "S5",
    }
    assert isinstance(single["emotions"], list) and all(set(p) == {"label", "score"} for p in single["emotions"])
    scores = [p["score"] for p in single["causes"]]
    assert scores == sorted(scores, reverse=True) and all(s >= DEFAULT_THRESHOLD for s in scores)
    assert len(result["batch"]) == 3 and all(list(row) == list(single) for row in result["batch"])
    assert list(result["all_scores"]) == ["emotions"] and len(result["all_scores"]["emotions"]) == 10
    assert result["resaved_equal"]


def test_save_pretrained_writes_a_complete_repo(saved_article_model):
    files = {path.name for path in saved_article_model.iterdir()}
    assert set(CODE_FILES) <= files and "model.safetensors" in files
    assert not [name for name in files if name.endswith((".bin", ".pt", ".pkl", ".pth"))]
    config = json.loads((saved_article_model / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_multigroup.MultiGroupConfig",
        "AutoModel": "modeling_multigroup.CamembertForMultiGroupClassification",
        "AutoModelForSequenceClassification": "modeling_multigroup.CamembertForMultiGroupClassification",
    }
    assert config["custom_pipelines"]["multi-group-classification"]["impl"] == (
        "pipeline_multigroup.MultiGroupClassificationPipeline"
    )


def test_remote_code_from_a_folder_without_multigroup(saved_article_model, tmp_path):
    _reference(saved_article_model, tmp_path)
    result = _result(run_python(CHECK_REMOTE.format(source=saved_article_model), cwd=tmp_path))
    _check(result)
    resaved = {path.name for path in (tmp_path / "resaved").iterdir()}
    assert set(CODE_FILES) <= resaved and "tokenizer.json" in resaved


def test_remote_code_by_repo_id_from_the_hub_cache_offline(saved_article_model, tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "cache" / "models--acme--tiny-multigroup"
    shutil.copytree(saved_article_model, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    _reference(saved_article_model, tmp_path)
    env = {"HF_HUB_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "mods")}
    _check(_result(run_python(CHECK_REMOTE.format(source="acme/tiny-multigroup"), cwd=tmp_path, env=env)))
