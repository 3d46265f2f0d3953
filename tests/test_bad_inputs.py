"""Every bad input we know of, each a test: the error type and a message that names the culprit and the fix.

`python tests/test_bad_inputs.py` prints the list as a markdown table with the message each case answers
(docs/bad_inputs.md is that output).
"""

import json
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from transformers import pipeline

from multigroup import AutoModelForMultiGroupClassification, MultiGroupConfig
from multigroup.data import infer_groups, load_table, prepare_dataset

from conftest import ARTICLE_GROUPS, MIXED_GROUPS, encode, make_tokenizer, run_python, tiny_config, tiny_model


@dataclass
class Case:
    area: str
    name: str
    call: Callable[[Path], object]
    error: type
    match: str


def spec(**group):
    return lambda tmp: MultiGroupConfig(groups=[{"name": "g", "type": "multiclass", "labels": ["x", "y"], **group}])


def encode_labels(example):
    return lambda tmp: tiny_config(ARTICLE_GROUPS).encode_labels(example)


def forward_labels(labels):
    return lambda tmp: tiny_model(ARTICLE_GROUPS)(**encode(make_tokenizer()), labels=labels)


def jsonl(content):
    def load(tmp):
        path = tmp / "data.jsonl"
        path.write_text(content)
        return load_table(path)

    return load


def prepare(rows, **kwargs):
    config = tiny_config([{"name": "score", "type": "multiclass", "labels": ["bad", "good"]}])
    return lambda tmp: prepare_dataset(Dataset.from_list(rows), make_tokenizer(), config, **kwargs)


_CLASSIFIER = {}


def classify(inputs, **kwargs):
    def call(tmp):
        if "clf" not in _CLASSIFIER:
            _CLASSIFIER["clf"] = pipeline("multi-group-classification", model=tiny_model(), tokenizer=make_tokenizer())
        return _CLASSIFIER["clf"](inputs, **kwargs)

    return call


def plain_encoder_without_groups(tmp):
    from transformers import BertConfig

    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2).save_pretrained(tmp)
    return AutoModelForMultiGroupClassification.from_pretrained(tmp)


def future_group_type(tmp):
    tiny_config().save_pretrained(tmp)
    config = json.loads((tmp / "config.json").read_text())
    config["groups"][1]["type"] = "hierarchical"
    (tmp / "config.json").write_text(json.dumps(config))
    return MultiGroupConfig.from_pretrained(tmp)


def repo_missing_code(tmp):
    """What a user without multigroup sees (with multigroup installed, its own code loads the folder)."""
    tiny_model().save_pretrained(tmp / "repo")
    (tmp / "repo" / "modeling_multigroup.py").unlink()
    code = "from transformers import AutoModel\nAutoModel.from_pretrained('repo', trust_remote_code=True)\n"
    completed = run_python(code, cwd=tmp)
    if completed.returncode:
        raise OSError(completed.stderr.strip().splitlines()[-1])


def non_finite_loss(tmp):
    model = tiny_model(MIXED_GROUPS)
    labels = torch.tensor([model.config.encode_labels({"stars": 1e30})] * 4)  # finite, but its square is not
    return model(**encode(make_tokenizer()), labels=labels)


NAN, INF = float("nan"), float("inf")
CASES = [
    # group specs
    Case("spec", "name that is not an identifier", spec(name="my group"), ValueError, "identifier-like string"),
    Case(
        "spec",
        "duplicate group names",
        lambda tmp: MultiGroupConfig(groups=[{"name": "a", "type": "regression"}] * 2),
        ValueError,
        r"unique, got \['a'\]",
    ),
    Case("spec", "unknown group type", spec(type="ordinal"), ValueError, "`g`: `type` must be one of"),
    Case(
        "spec",
        "missing labels",
        spec(labels=None),
        ValueError,
        "`g`: a multiclass group needs a list of at least 2 labels",
    ),
    Case("spec", "duplicate labels", spec(labels=["x", "x", "y"]), ValueError, r"`g`: duplicate labels \['x'\]"),
    Case("spec", "multiclass group with one label", spec(labels=["x"]), ValueError, "at least 2 labels"),
    Case(
        "spec",
        "non-string label",
        spec(labels=["x", 2]),
        ValueError,
        r"`g`: labels must be non-empty strings, got \[2\]",
    ),
    Case("spec", "empty-string label", spec(labels=["x", ""]), ValueError, "non-empty strings"),
    Case(
        "spec",
        "negative weight",
        spec(weight=-0.5),
        ValueError,
        "`g`: `weight` must be a finite number >= 0, got -0.5",
    ),
    Case("spec", "NaN weight", spec(weight=NAN), ValueError, "`weight` must be a finite number >= 0, got nan"),
    Case("spec", "infinite weight", spec(weight=INF), ValueError, "`weight` must be a finite number >= 0, got inf"),
    Case(
        "spec",
        "threshold of 0",
        spec(type="multilabel", threshold=0.0),
        ValueError,
        "strictly between 0 and 1, got 0.0",
    ),
    Case(
        "spec",
        "threshold above 1",
        spec(type="multilabel", threshold=1.5),
        ValueError,
        "strictly between 0 and 1, got 1.5",
    ),
    Case(
        "spec",
        "per-label thresholds of the wrong length",
        spec(type="multilabel", threshold=[0.5]),
        ValueError,
        "has 1 values but the group has 2 labels",
    ),
    Case(
        "spec",
        "threshold on a multiclass group",
        spec(threshold=0.3),
        ValueError,
        r"\['threshold'\] do not apply to a multiclass group",
    ),
    Case(
        "spec",
        "labels on a regression group",
        spec(type="regression"),
        ValueError,
        "a regression group has no `labels`",
    ),
    Case("spec", "unknown field", spec(colour="red"), ValueError, r"unknown field\(s\) \['colour'\]"),
    Case(
        "spec",
        "pos_weight of the wrong length",
        spec(type="multilabel", pos_weight=[1.0]),
        ValueError,
        "`pos_weight` must be a list of 2 numbers",
    ),
    Case(
        "spec",
        "groups given as a dict",
        lambda tmp: MultiGroupConfig(groups={"a": {}}),
        ValueError,
        "order would be lost",
    ),
    Case(
        "spec",
        "a group that is not a dict",
        lambda tmp: MultiGroupConfig(groups=["score"]),
        TypeError,
        "Group #0 must be a dict",
    ),
    # labels
    Case(
        "labels",
        "unknown multiclass label",
        encode_labels({"global_score": "S9"}),
        ValueError,
        "`global_score`: unknown label 'S9'; known labels are",
    ),
    Case(
        "labels",
        "unknown multilabel label",
        encode_labels({"emotions": ["E1", "E9"]}),
        ValueError,
        r"`emotions`: unknown label\(s\) \['E9'\]",
    ),
    Case(
        "labels",
        "a list given to a multiclass group",
        encode_labels({"global_score": ["S1"]}),
        TypeError,
        "`global_score` is multiclass: give exactly one label as a string",
    ),
    Case(
        "labels",
        "a string given to a multilabel group",
        encode_labels({"causes": "C1"}),
        TypeError,
        "`causes` is multilabel: give a list of label strings",
    ),
    Case(
        "labels",
        "non-numeric regression target",
        lambda tmp: tiny_config([{"name": "stars", "type": "regression"}]).encode_labels({"stars": "4"}),
        ValueError,
        r"`stars` \(regression\) needs a finite number, got '4'",
    ),
    Case(
        "labels",
        "NaN regression target",
        lambda tmp: tiny_config([{"name": "stars", "type": "regression"}]).encode_labels({"stars": NAN}),
        ValueError,
        "needs a finite number, got nan",
    ),
    Case(
        "labels",
        "infinite regression target",
        lambda tmp: tiny_config([{"name": "stars", "type": "regression"}]).encode_labels({"stars": INF}),
        ValueError,
        "needs a finite number, got inf",
    ),
    Case(
        "labels",
        "labels tensor of the wrong width",
        forward_labels(torch.zeros(4, 26)),
        ValueError,
        r"`labels` must have shape \(batch_size, 27\) for groups \['global_score', 'emotions', 'causes'\]",
    ),
    Case(
        "labels",
        "labels tensor of the wrong dtype",
        forward_labels(torch.zeros(4, 27, dtype=torch.bool)),
        TypeError,
        "`labels` must be a float tensor",
    ),
    Case(
        "labels",
        "a loss that overflows to inf",
        non_finite_loss,
        FloatingPointError,
        r"Non-finite loss from group\(s\) \['stars'\] \(the logits are finite\)",
    ),
    # data files
    Case(
        "data",
        "missing text column",
        prepare([{"body": "ok", "score": "bad"}]),
        ValueError,
        r"Missing column\(s\) \['text'\]; the data has columns",
    ),
    Case(
        "data",
        "null text",
        prepare([{"text": "ok", "score": "bad"}, {"text": None, "score": "bad"}]),
        ValueError,
        r"Row 2 \(1-based\): `text` must be a string, got None",
    ),
    Case(
        "data",
        "non-string text",
        prepare([{"text": 42, "score": "bad"}]),
        ValueError,
        r"Row 1 \(1-based\): `text` must be a string, got 42",
    ),
    Case(
        "data",
        "label unseen in training (validation data)",
        prepare([{"text": "ok", "score": "meh"}]),
        ValueError,
        r"Row 1 \(1-based\): Group `score`: unknown label 'meh'.*ignore_unknown_labels=True",
    ),
    Case("data", "empty file", jsonl(""), ValueError, "is empty: it holds no records"),
    Case("data", "malformed JSON line", jsonl('{"text": "a"}\n{"text": "b"\n'), ValueError, r"line 2: malformed JSON"),
    Case(
        "data",
        "a line that is not an object",
        jsonl('{"text": "a"}\n"b"\n'),
        ValueError,
        "line 2: expected a JSON object per line, got str",
    ),
    Case(
        "data",
        "a column holding mixed types",
        jsonl('{"text": "a", "score": "bad"}\n{"text": "b", "score": 3}\n'),
        ValueError,
        "a column holds values of mixed types",
    ),
    Case(
        "data",
        "a list in a multiclass column",
        lambda tmp: infer_groups(Dataset.from_list([{"s": ["a"]}]), multiclass=["s"]),
        TypeError,
        r"Row 1 \(1-based\), column `s`: expected a label string or null",
    ),
    Case(
        "data",
        "unsupported file type",
        lambda tmp: (tmp / "a.xlsx").write_text("x") and load_table(tmp / "a.xlsx"),
        ValueError,
        "unsupported file type '.xlsx'",
    ),
    Case("data", "missing file", lambda tmp: load_table(tmp / "nope.jsonl"), FileNotFoundError, "No such file"),
    # pipeline calls
    Case("pipeline", "None", classify(None), TypeError, "any iterable of strings, got NoneType None"),
    Case("pipeline", "a number", classify(3.5), TypeError, "got float 3.5"),
    Case("pipeline", "a dict", classify({"text": "hi"}), TypeError, "got dict"),
    Case(
        "pipeline",
        "a list mixing strings and other things",
        classify(["fine", None]),
        TypeError,
        "Input #1 is NoneType None",
    ),
    Case(
        "pipeline",
        "unknown group in groups=",
        classify("fine", groups=["colour"]),
        ValueError,
        r"Unknown group 'colour'; this model's groups are \['global_score', 'emotions', 'causes'\]",
    ),
    Case(
        "pipeline",
        "groups= as one string",
        classify("fine", groups="emotions"),
        TypeError,
        "`groups` must be a list of group names",
    ),
    Case("pipeline", "top_k of 0", classify("fine", top_k=0), ValueError, "`top_k` must be a positive int or None"),
    Case(
        "pipeline",
        "top_k as a string",
        classify("fine", top_k="3"),
        ValueError,
        "`top_k` must be a positive int or None",
    ),
    Case(
        "pipeline",
        "threshold of 1.5",
        classify("fine", threshold=1.5),
        ValueError,
        "strictly between 0 and 1, got 1.5",
    ),
    Case(
        "pipeline",
        "threshold for a multiclass group",
        classify("fine", threshold={"global_score": 0.5}),
        ValueError,
        "names 'global_score', which is not a multilabel group",
    ),
    # loading
    Case(
        "loading",
        "plain encoder through the Auto class without groups=",
        plain_encoder_without_groups,
        ValueError,
        "plain `bert` encoder with no label groups. Pass them",
    ),
    Case(
        "loading",
        "config.json with an unknown group type (a future version)",
        future_group_type,
        ValueError,
        "`type` must be one of.*written by a newer multigroup",
    ),
    Case(
        "loading",
        "a repo missing its code files",
        repo_missing_code,
        OSError,
        "does not appear to have a file named modeling_multigroup.py",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{case.area}: {case.name}" for case in CASES])
def test_bad_input(case, tmp_path):
    with pytest.raises(case.error, match=case.match):
        case.call(tmp_path)


def test_there_are_at_least_forty_distinct_cases():
    assert len({(case.area, case.name) for case in CASES}) >= 40


def test_an_empty_list_is_an_empty_answer_and_long_text_is_truncated(tmp_path):
    assert classify([])(tmp_path) == []
    out = classify("the food was great " * 1000)(tmp_path)
    assert list(out) == ["global_score", "emotions", "causes"]


def test_failed_inputs_leave_the_config_and_files_intact(tmp_path):
    config = tiny_config(ARTICLE_GROUPS)
    before = config.to_json_string()
    with pytest.raises(ValueError):
        config.encode_labels({"global_score": "S9"})
    with pytest.raises(ValueError):
        config.decode(torch.zeros(1, 27), threshold=2.0)
    assert config.to_json_string() == before
    row = config.encode_labels({"global_score": "S1"})
    assert row[0] == 1.0 and math.isnan(row[5])


if __name__ == "__main__":  # the markdown list of cases and what each answers
    import tempfile

    print("| area | bad input | answer |\n|---|---|---|")
    for case in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                case.call(Path(tmp))
                answer = "(no error)"
            except Exception as error:  # noqa: BLE001 - the point is to show what each raises
                message = re.sub(r"[|\n]", " ", str(error))
                answer = f"`{type(error).__name__}`: {message}"
        print(f"| {case.area} | {case.name} | {answer} |")
    sys.exit(0)
