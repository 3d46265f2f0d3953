import json
import math

import pytest
from datasets import Dataset

from multigroup.data import infer_groups, load_table, prepare_dataset

from conftest import make_tokenizer, tiny_config

ROWS = [
    {"text": "slow queue", "score": "S2", "causes": ["wait"], "stars": 2.0},
    {"text": "kind staff", "score": "S5", "causes": ["staff", "wait"], "stars": 4.5},
    {"text": "no answer", "score": None, "causes": [], "stars": None},
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_load_jsonl_csv_and_parquet(tmp_path):
    dataset = load_table(write_jsonl(tmp_path / "a.jsonl", ROWS))
    assert len(dataset) == 3 and dataset[1]["causes"] == ["staff", "wait"]
    dataset.select_columns(["text", "score"]).to_csv(tmp_path / "a.csv")
    assert load_table(tmp_path / "a.csv")["score"] == ["S2", "S5", None]
    dataset.to_parquet(tmp_path / "a.parquet")
    assert load_table(tmp_path / "a.parquet")["stars"] == [2.0, 4.5, None]


@pytest.mark.parametrize(
    "content, match",
    [
        ('{"text": "ok"}\n{"text": oops}\n', "line 2: malformed JSON"),
        ("\n\n", "is empty"),
        ('{"text": "ok"}\n[1, 2]\n', "line 2: expected a JSON object"),
        ('{"text": "ok", "score": "S1"}\n{"text": "ok", "score": ["S1"]}\n', "mixed types"),
    ],
)
def test_bad_files_name_the_line(tmp_path, content, match):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        load_table(path)


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such file"):
        load_table(tmp_path / "nope.jsonl")
    (tmp_path / "a.txt").write_text("hello")
    with pytest.raises(ValueError, match="unsupported file type '.txt'"):
        load_table(tmp_path / "a.txt")


def test_infer_groups_is_deterministic_and_typed():
    groups = infer_groups(Dataset.from_list(ROWS), multiclass=["score"], multilabel=["causes"], regression=["stars"])
    assert groups == [
        {"name": "score", "type": "multiclass", "labels": ["S2", "S5"]},
        {"name": "causes", "type": "multilabel", "labels": ["staff", "wait"]},
        {"name": "stars", "type": "regression"},
    ]
    with pytest.raises(ValueError, match=r"Missing column\(s\) \['topic'\]"):
        infer_groups(Dataset.from_list(ROWS), multilabel=["topic"])
    with pytest.raises(TypeError, match="Row 0, column `text`: expected a list of label strings"):
        infer_groups(Dataset.from_list(ROWS), multilabel=["text"])


def test_prepare_dataset_builds_flat_labels_with_missing_marker():
    dataset = Dataset.from_list(ROWS)
    config = tiny_config(infer_groups(dataset, multiclass=["score"], multilabel=["causes"], regression=["stars"]))
    prepared = prepare_dataset(dataset, make_tokenizer(), config)
    assert prepared.column_names == ["input_ids", "attention_mask", "labels"]
    assert prepared[0]["labels"] == [1.0, 0.0, 0.0, 1.0, 2.0]
    assert math.isnan(prepared[2]["labels"][0]) and prepared[2]["labels"][2:4] == [0.0, 0.0]
    assert math.isnan(prepared[2]["labels"][4])


def test_prepare_dataset_errors_name_the_row():
    config = tiny_config([{"name": "score", "type": "multiclass", "labels": ["S2", "S5"]}])
    rows = [{"text": "fine", "score": "S2"}, {"text": None, "score": "S5"}]
    with pytest.raises(ValueError, match="Row 1: `text` must be a string"):
        prepare_dataset(Dataset.from_list(rows), make_tokenizer(), config)
    with pytest.raises(ValueError, match="Missing column"):
        prepare_dataset(Dataset.from_list(rows), make_tokenizer(), config, text_column="body")
    rows = [{"text": "fine", "score": "S2"}, {"text": "new", "score": "S4"}]
    with pytest.raises(ValueError, match="Row 1: Group `score`: unknown label 'S4'.*ignore_unknown_labels=True"):
        prepare_dataset(Dataset.from_list(rows), make_tokenizer(), config)
    prepared = prepare_dataset(Dataset.from_list(rows), make_tokenizer(), config, ignore_unknown_labels=True)
    assert math.isnan(prepared[1]["labels"][0])
