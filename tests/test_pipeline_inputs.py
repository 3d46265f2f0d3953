"""Every input a transformers text pipeline takes: a string, a list or tuple, a `datasets` Column, a Dataset /
`KeyDataset`, a torch Dataset, a generator, at batch size 1 and more; results in input order and equal to the list's.
Through remote code, in a process that cannot import multigroup."""

import json

import pytest
from transformers import pipeline

from conftest import MIXED_GROUPS, make_tokenizer, run_python, tiny_model

CHECK = """
import json, torch, datasets
from transformers import pipeline
from transformers.pipelines.pt_utils import KeyDataset
clf = pipeline("multi-group-classification", model="model", trust_remote_code=True)
texts = ["the food was great", "slow rude staff and bad service", "i love it", "very good", "", "bad"] * 7
ds = datasets.Dataset.from_dict({"text": texts})

class Texts(torch.utils.data.Dataset):
    def __len__(self):
        return len(texts)
    def __getitem__(self, i):
        return texts[i]

out = {}
for batch_size in (1, 4):
    options = {"batch_size": batch_size, "top_k": 2, "groups": ["score", "topics"]}
    reference = clf(texts, **options)
    kinds = {
        "tuple": clf(tuple(texts), **options),
        "column": clf(ds["text"], **options),
        "key_dataset": clf(KeyDataset(ds, "text"), **options),
        "torch_dataset": clf(Texts(), **options),
        "generator": clf((text for text in texts), **options),
        "iterator": clf(iter(texts), **options),
    }
    out[batch_size] = {kind: [type(result).__name__, list(result) == reference] for kind, result in kinds.items()}
    single = clf(texts[3], **options)  # alone in its batch: the same labels (scores differ in the last bits)
    labels = lambda row: {group: [p["label"] for p in ranked] for group, ranked in row.items()}
    out[f"list{batch_size}"] = [len(reference), labels(reference[3]) == labels(single)]
errors = []
for bad in ((text for text in ["fine", "also fine", None]), KeyDataset([{"text": "a"}, {"text": 3}], "text")):
    try:
        list(clf(bad, batch_size=2))
    except TypeError as error:
        errors.append(str(error))
try:
    clf(ds)
except TypeError as error:
    errors.append(str(error))
flat = pipeline("text-classification", model="model", trust_remote_code=True, top_k=None)("i love it")
print("RESULT" + json.dumps([out, errors, flat]))
"""


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    work = tmp_path_factory.mktemp("inputs")
    model = tiny_model(MIXED_GROUPS, "bert", initializer_range=0.5)
    pipeline("multi-group-classification", model=model, tokenizer=make_tokenizer("bert")).save_pretrained(
        work / "model"
    )
    completed = run_python(CHECK, cwd=work)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.split("RESULT")[-1])


@pytest.mark.parametrize("batch_size", ["1", "4"])
def test_every_input_kind_gives_the_lists_answers_in_order(result, batch_size):
    kinds = result[0][batch_size]
    assert {kind: same for kind, (_, same) in kinds.items()} == dict.fromkeys(kinds, True)
    # a sized sequence in, a list out; a dataset or a stream in, an iterator out (as transformers' pipelines)
    assert {kind: name == "list" for kind, (name, _) in kinds.items()} == {
        "tuple": True, "column": True, "key_dataset": False, "torch_dataset": False, "generator": False,
        "iterator": False,
    }  # fmt: skip
    assert result[0][f"list{batch_size}"] == [42, True]


def test_a_bad_item_in_a_stream_is_named_by_its_position(result):
    errors = result[1]
    assert errors[0].startswith("Input #2 is NoneType None; every input must be a string")
    assert errors[1].startswith("Input #1 is int 3; every input must be a string")
    assert "Input #0 is dict" in errors[2] and "pass its column: clf(ds['text'])" in errors[2]


def test_the_generic_text_classification_pipeline_scores_each_column_by_name(result):
    flat = result[2][0] if isinstance(result[2][0], list) else result[2]  # one text: transformers nests it
    assert sorted(item["label"] for item in flat) == sorted(
        ["score:bad", "score:ok", "score:good", "topics:food", "topics:service", "topics:price", "stars"]
    )
    assert all(0 < item["score"] < 1 for item in flat)
    assert sum(item["score"] for item in flat) != pytest.approx(1.0)  # a sigmoid per column, not one softmax


def test_a_batch_size_that_is_not_a_positive_int_is_refused():
    clf = pipeline(
        "multi-group-classification", model=tiny_model(MIXED_GROUPS, "bert"), tokenizer=make_tokenizer("bert")
    )
    for bad in (0, -2, 1.5):
        with pytest.raises(ValueError, match=f"`batch_size` must be a positive int, got {bad}"):
            clf(["a", "b"], batch_size=bad)
