import json
import math
import re

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
    with pytest.raises(TypeError, match=r"Row 1 \(1-based\), column `text`: expected a list of label strings"):
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
    with pytest.raises(ValueError, match=r"Row 2 \(1-based\): `text` must be a string"):
        prepare_dataset(Dataset.from_list(rows), make_tokenizer(), config)
    with pytest.raises(ValueError, match="Missing column"):
        prepare_dataset(Dataset.from_list(rows), make_tokenizer(), config, text_column="body")
    rows = [{"text": "fine", "score": "S2"}, {"text": "new", "score": "S4"}]
    with pytest.raises(
        ValueError, match=r"Row 2 \(1-based\): Group `score`: unknown label 'S4'.*ignore_unknown_labels=True"
    ):
        prepare_dataset(Dataset.from_list(rows), make_tokenizer(), config)
    prepared = prepare_dataset(Dataset.from_list(rows), make_tokenizer(), config, ignore_unknown_labels=True)
    assert math.isnan(prepared[1]["labels"][0])


def _prepare_error(path, config, **kwargs) -> str:
    with pytest.raises((TypeError, ValueError)) as raised:
        prepare_dataset(load_table(path), make_tokenizer(), config, source=path, **kwargs)
    return str(raised.value)


def test_jsonl_errors_name_the_file_and_the_line_an_editor_shows(tmp_path):
    config = tiny_config([{"name": "score", "type": "multiclass", "labels": ["S2", "S5"]}])
    path = tmp_path / "test.jsonl"  # a blank line 2: records and lines part ways
    path.write_text(
        '{"text": "fine", "score": "S2"}\n\n{"text": "ok", "score": "S5"}\n{"text": "new", "score": "S4"}\n'
    )
    assert _prepare_error(path, config) == (
        f"{path}, line 4: Group `score`: unknown label 'S4'; known labels are ['S2', 'S5']. To drop labels the "
        "model does not know, pass ignore_unknown_labels=True."
    )
    assert _prepare_error(path, config, ignore_option=None).endswith("known labels are ['S2', 'S5'].")
    path.write_text('{"text": "fine", "score": "S2"}\n{"text": null, "score": "S5"}\n')
    assert _prepare_error(path, config) == f"{path}, line 2: `text` must be a string, got None; drop or fill that row."
    with pytest.raises(TypeError, match=re.escape(f"{path}, line 1, column `score`: expected a list of label")):
        infer_groups(load_table(path), multilabel=["score"], source=path)
    with pytest.raises(ValueError, match=re.escape(f"{path}: Missing column(s) ['body']")):
        prepare_dataset(load_table(path), make_tokenizer(), config, text_column="body", source=path)


def test_csv_errors_name_the_line_a_record_starts_on(tmp_path):
    config = tiny_config([{"name": "score", "type": "multiclass", "labels": ["S2", "S5"]}])
    path = tmp_path / "test.csv"  # header on line 1, a text over lines 2-3, a blank line 4
    path.write_text('text,score\n"two\nlines",S2\n\nfine,S5\nnew,S4\n')
    assert _prepare_error(path, config).startswith(f"{path}, line 6: Group `score`: unknown label 'S4'")
    path.write_text("text,score\nfine,S2\n,S5\n")
    assert _prepare_error(path, config) == f"{path}, line 3: `text` must be a string, got None; drop or fill that row."


def test_parquet_errors_name_the_row(tmp_path):
    config = tiny_config([{"name": "score", "type": "multiclass", "labels": ["S2", "S5"]}])
    path = tmp_path / "test.parquet"
    Dataset.from_list([{"text": "fine", "score": "S2"}, {"text": "new", "score": "S4"}]).to_parquet(path)
    assert _prepare_error(path, config).startswith(f"{path}, row 2: Group `score`: unknown label 'S4'")


def test_iter_csv_gives_start_lines_and_rejects_extra_fields(tmp_path):
    from multigroup.data import iter_csv

    path = tmp_path / "in.csv"
    path.write_text('id,text\n1,"a\nb"\n\n2,c\n3\n')
    assert list(iter_csv(path)) == [(2, {"id": "1", "text": "a\nb"}), (5, {"id": "2", "text": "c"}),
                                    (6, {"id": "3", "text": None})]  # fmt: skip
    path.write_text("id,text\n1,hello, world\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}, line 2: 3 fields but the header has 2; quote")):
        list(iter_csv(path))


def test_a_csv_row_with_too_many_fields_names_its_line(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text('text,score\n"fine, really",S2\nslow, rude,S1\n')
    with pytest.raises(ValueError) as raised:
        load_table(path)
    assert str(raised.value) == (
        f'{path}, line 3: 3 fields but the header has 2; quote any field that holds a comma ("a, b").'
    )
