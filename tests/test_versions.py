"""Saved models travel: saved under transformers 5, they load and predict the same under transformers 4.51.3 and
4.57 (environments made by `make old-transformers`), and they carry no path of the machine that saved them."""

import json
import sys

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoModel, pipeline

from helpers import FAMILIES, OLD_PYTHONS, run_isolated, save_plain, tokenizer_for
from multigroup import AutoModelForMultiGroupClassification
from multigroup.hub import record_evaluation, write_model_card
from multigroup.modeling_multigroup import CODE_FILES

from conftest import MIXED_GROUPS, TEXTS, encode

CHECK = """
import json, sys, torch, transformers
from safetensors.torch import load_file
from transformers import AutoModel, pipeline
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
out = {"version": transformers.__version__}
for family in sys.argv[1:]:
    try:
        model = AutoModel.from_pretrained(family, trust_remote_code=True).eval()
    except Exception as error:
        out[family] = {"missing": family not in CONFIG_MAPPING, "error": f"{type(error).__name__}: {error}"}
        continue
    ref = load_file(f"{family}/reference.safetensors")
    with torch.no_grad():
        logits = model(**{k: v for k, v in ref.items() if k != "logits"}).logits
    clf = pipeline("multi-group-classification", model=family, trust_remote_code=True)
    out[family] = {"diff": (logits - ref["logits"]).abs().max().item(), "predictions": clf(TEXTS)}
print("RESULT" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Every family saved by transformers 5 with its tokenizer, its logits and the pipeline's answers."""
    root = tmp_path_factory.mktemp("saved")
    answers = {}
    for family in FAMILIES:
        save_plain(family, AutoModel, root / "plain" / family)
        model = AutoModelForMultiGroupClassification.from_pretrained(root / "plain" / family, groups=MIXED_GROUPS)
        tokenizer = tokenizer_for(family)
        pipeline("multi-group-classification", model=model.eval(), tokenizer=tokenizer).save_pretrained(root / family)
        inputs = {k: v for k, v in encode(tokenizer, TEXTS).items() if k != "token_type_ids"}
        with torch.no_grad():
            logits = model(**inputs).logits
        save_file({**inputs, "logits": logits.contiguous()}, root / family / "reference.safetensors")
        answers[family] = pipeline("multi-group-classification", model=model, tokenizer=tokenizer)(TEXTS)
    return root, answers


@pytest.mark.skipif(not OLD_PYTHONS, reason="`make old-transformers` makes the transformers 4 environments")
@pytest.mark.parametrize(
    "python", OLD_PYTHONS, ids=lambda path: path.parent.parent.name.removeprefix(".venv-transformers-")
)
def test_every_family_loads_and_predicts_the_same_under_transformers_4(python, saved):
    root, answers = saved
    completed = run_isolated(python, f"TEXTS = {TEXTS!r}\n" + CHECK, root, *FAMILIES)
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.split("RESULT")[-1])
    assert result["version"].startswith("4.")
    for family in FAMILIES:
        if result[family].get("missing"):  # EuroBERT came with transformers 5: a clear error, naming versions
            message = result[family]["error"]
            assert f"`encoder_type` '{family}' is not a model type of the installed transformers 4." in message
            assert "saved with transformers 5." in message
            continue
        assert "error" not in result[family], (family, result[family])
        assert result[family]["diff"] <= 1e-5, family
        for mine, theirs in zip(answers[family], result[family]["predictions"]):
            assert mine["score"]["label"] == theirs["score"]["label"], family
            assert abs(mine["score"]["score"] - theirs["score"]["score"]) <= 1e-5, family
            assert [p["label"] for p in mine["topics"]] == [p["label"] for p in theirs["topics"]], family
            assert abs(mine["stars"]["value"] - theirs["stars"]["value"]) <= 1e-5, family
    assert sum(not result[family].get("missing") for family in FAMILIES) >= 10


TOP_FAMILIES = ["bert", "distilbert", "deberta-v2", "modernbert"]  # tensor, tuple and keyword-argument layers


@pytest.mark.skipif(not OLD_PYTHONS, reason="`make old-transformers` makes the transformers 4 environments")
@pytest.mark.parametrize(
    "python", OLD_PYTHONS, ids=lambda path: path.parent.parent.name.removeprefix(".venv-transformers-")
)
def test_each_groups_top_layer_loads_and_predicts_the_same_under_transformers_4(python, tmp_path):
    for family in TOP_FAMILIES:
        save_plain(family, AutoModel, tmp_path / "plain" / family)
        model = AutoModelForMultiGroupClassification.from_pretrained(
            tmp_path / "plain" / family, groups=MIXED_GROUPS, group_top_layer=True
        ).eval()
        with torch.no_grad():  # each group's copy its own weights, so that a mixed-up copy shows
            for i, copy in enumerate(model.base_model.get_submodule(_LAYERS[family])[-1].group_copies):
                for param in copy.parameters():
                    param.add_(torch.randn(param.shape, generator=torch.Generator().manual_seed(i)) * 0.05)
        tokenizer = tokenizer_for(family)
        pipeline("multi-group-classification", model=model, tokenizer=tokenizer).save_pretrained(tmp_path / family)
        inputs = {k: v for k, v in encode(tokenizer, TEXTS).items() if k != "token_type_ids"}
        with torch.no_grad():
            logits = model(**inputs).logits
        save_file({**inputs, "logits": logits.contiguous()}, tmp_path / family / "reference.safetensors")
    completed = run_isolated(python, f"TEXTS = {TEXTS!r}\n" + CHECK, tmp_path, *TOP_FAMILIES)
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.split("RESULT")[-1])
    for family in TOP_FAMILIES:
        assert "error" not in result[family], (family, result[family])
        assert result[family]["diff"] <= 1e-5, family


_LAYERS = {"bert": "encoder.layer", "distilbert": "transformer.layer", "deberta-v2": "encoder.layer",
           "modernbert": "layers"}  # fmt: skip


def test_an_older_transformers_gets_one_message_naming_both_versions(saved, tmp_path):
    root, _ = saved
    package = tmp_path / "remote"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in CODE_FILES:
        (package / name).write_text((root / "bert" / name).read_text())
    code = "import sys, transformers; sys.path.insert(0, '.'); transformers.__version__ = '4.40.2'\n"
    code += "import remote.modeling_multigroup"
    completed = run_isolated(sys.executable, code, tmp_path)
    assert completed.returncode != 0
    last = completed.stderr.strip().splitlines()[-1]
    assert last == (
        "ImportError: This multigroup model needs transformers>=4.51.3, but transformers 4.40.2 is installed. "
        "Upgrade it: pip install -U 'transformers>=4.51.3'"
    )


@pytest.mark.skipif(not OLD_PYTHONS, reason="`make old-transformers` makes the transformers 4 environments")
def test_the_tokenizer_loads_alone_under_transformers_4_without_remote_code(saved):
    root, _ = saved
    code = "from transformers import AutoTokenizer as T; print('RESULT' + type(T.from_pretrained('bert')).__name__)"
    completed = run_isolated(OLD_PYTHONS[0], code, root)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.split("RESULT")[-1].strip() == "PreTrainedTokenizerFast"


def test_no_saved_file_holds_a_path_of_this_machine(saved, tmp_path):
    root, _ = saved
    folder = tmp_path / "model"
    model = AutoModelForMultiGroupClassification.from_pretrained(root / "bert")  # name_or_path: a local path
    model.config.base_model = str(root / "plain" / "bert")
    pipeline("multi-group-classification", model=model, tokenizer=tokenizer_for("bert")).save_pretrained(folder)
    record_evaluation(folder, {"file": str(tmp_path / "data" / "test.jsonl"), "split": "test", "metrics": {}})
    write_model_card(folder)
    for path in folder.iterdir():
        if path.suffix in (".json", ".md"):
            text = path.read_text()
            assert str(tmp_path) not in text and str(root) not in text and "/tmp" not in text, path.name
    assert json.loads((folder / "metrics.json").read_text())["file"] == "data/test.jsonl"
    assert "_name_or_path" not in json.loads((folder / "config.json").read_text())
    assert not [path for path in folder.rglob("*") if path.is_dir() and not any(path.iterdir())]


@pytest.mark.skipif(not OLD_PYTHONS, reason="`make old-transformers` makes the transformers 4 environments")
def test_a_config_built_in_code_under_transformers_4_keeps_the_familys_token_ids(saved):
    root, _ = saved
    code = """
import json
from transformers import AutoConfig
MultiGroupConfig = type(AutoConfig.from_pretrained("roberta", trust_remote_code=True))
groups = [{"name": "score", "type": "multiclass", "labels": ["a", "b"]}]
found = {t: [MultiGroupConfig(groups=groups, encoder_type=t).pad_token_id] for t in ("roberta", "bert", "camembert")}
found["max_tokens"] = MultiGroupConfig(groups=groups, encoder_type="roberta").max_tokens
print("RESULT" + json.dumps(found))
"""
    completed = run_isolated(OLD_PYTHONS[0], code, root)
    assert completed.returncode == 0, completed.stderr[-2000:]
    found = json.loads(completed.stdout.split("RESULT")[-1])
    # RobertaConfig defaults to 512 positions, of which pad_token_id + 1 = 2 are never used by text
    assert found == {"roberta": [1], "bert": [0], "camembert": [1], "max_tokens": 510}


RELATED = [
    {"name": "polarity", "type": "multiclass", "labels": ["negative", "positive"], "temperature": 1.7},
    {"name": "entities", "type": "multilabel", "labels": ["BATTERY", "LAPTOP"], "temperature": 1.3},
    {"name": "attributes", "type": "multilabel", "labels": ["PRICE", "QUALITY"]},
    {"name": "aspects", "type": "multilabel", "labels": ["BATTERY#QUALITY", "LAPTOP#PRICE"], "threshold": 0.4},
]
DECODE = """
import json, sys, torch, transformers
from transformers import AutoConfig
config = AutoConfig.from_pretrained("model", trust_remote_code=True)
logits = torch.load("logits.pt")
print("RESULT" + json.dumps({"version": transformers.__version__, "relations": config.relations,
                             "top1": config.decode(logits), "all": config.decode(logits, top_k=None)}))
"""


@pytest.mark.skipif(not OLD_PYTHONS, reason="`make old-transformers` makes the transformers 4 environments")
@pytest.mark.parametrize(
    "python", OLD_PYTHONS, ids=lambda path: path.parent.parent.name.removeprefix(".venv-transformers-")
)
def test_relations_and_temperatures_decode_the_same_under_transformers_4(python, tmp_path):
    from conftest import tiny_model

    relations = [{"compose": "aspects", "of": ["entities", "attributes"], "separator": "#"}]
    model = tiny_model(RELATED, relations=relations)
    model.save_pretrained(tmp_path / "model")
    logits = torch.randn(40, model.config.num_columns, generator=torch.Generator().manual_seed(0)) * 3
    torch.save(logits, tmp_path / "logits.pt")
    completed = run_isolated(python, DECODE, tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.split("RESULT")[-1])
    assert result["version"].startswith("4.") and result["relations"] == relations
    assert result["top1"] == json.loads(json.dumps(model.config.decode(logits)))
    assert result["all"] == json.loads(json.dumps(model.config.decode(logits, top_k=None)))
