import json
import math
import re

import datasets
import numpy as np
import pytest
from datasets import Dataset

import multigroup.data
from helpers import write_jsonl
from multigroup.data import infer_groups, label_matrix, load_table, prepare_dataset

from conftest import make_tokenizer, tiny_config

ROWS = [
    {"text": "slow queue", "score": "S2", "causes": ["wait"], "stars": 2.0},
    {"text": "kind staff", "score": "S5", "causes": ["staff", "wait"], "stars": 4.5},
    {"text": "no answer", "score": None, "causes": [], "stars": None},
]


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path, monkeypatch):
    """load_table's Arrow files go to the test's folder, not the user's datasets cache."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "datasets-cache"))


@pytest.fixture
def small_chunks(monkeypatch):
    """JSONL files parsed 256 bytes at a time: a few lines make several chunks, as 10 MB chunks of a large file."""
    monkeypatch.setattr(multigroup.data.tables, "_JSON_CHUNK_BYTES", 256)


def test_load_jsonl_csv_and_parquet(tmp_path):
    dataset = load_table(write_jsonl(tmp_path / "a.jsonl", ROWS))
    assert len(dataset) == 3 and dataset[1]["causes"] == ["staff", "wait"]
    dataset.select_columns(["text", "score"]).to_csv(tmp_path / "a.csv")
    assert load_table(tmp_path / "a.csv")["score"] == ["S2", "S5", None]
    dataset.to_parquet(tmp_path / "a.parquet")
    assert load_table(tmp_path / "a.parquet")["stars"] == [2.0, 4.5, None]


def test_csv_list_cells_become_label_lists(tmp_path):
    """A multilabel group in CSV: a JSON list per cell, or pandas' `to_csv` of a list column; `[]` is no labels and
    an empty cell a missing group, as in JSONL."""
    import pandas as pd

    frame = pd.DataFrame({"text": ["a", "b", "c"], "causes": [["wait"], ["staff", "wait"], []]})
    frame.to_csv(tmp_path / "pandas.csv", index=False)  # writes ['wait'] (Python's repr)
    (tmp_path / "json.csv").write_text('text,causes\na,"[""wait""]"\nb,"[""staff"", ""wait""]"\nc,[]\nd,\n')
    assert load_table(tmp_path / "pandas.csv")["causes"] == [["wait"], ["staff", "wait"], []]
    table = load_table(tmp_path / "json.csv")
    assert table["causes"] == [["wait"], ["staff", "wait"], [], None]
    assert infer_groups(table, multilabel="causes", source=tmp_path / "json.csv")[0]["labels"] == ["staff", "wait"]


def test_a_csv_list_cell_that_does_not_parse_names_its_line_and_the_format(tmp_path):
    (tmp_path / "bad.csv").write_text('text,causes\na,"[""wait""]"\nb,[wait\n')
    assert load_table(tmp_path / "bad.csv")["causes"] == ['["wait"]', "[wait"]  # not every cell a list: text
    (tmp_path / "bad.csv").write_text('text,causes\na,"[""wait""]"\nb,[wait]\n')
    with pytest.raises(ValueError, match=r"bad.csv, line 3, column `causes`: '\[wait\]' is not a list of label str"):
        load_table(tmp_path / "bad.csv")
    (tmp_path / "pipes.csv").write_text("text,causes\na,wait|staff\n")
    with pytest.raises(TypeError, match=r"line 2, column `causes`: expected a list .* In a CSV file, write a JSON"):
        infer_groups(load_table(tmp_path / "pipes.csv"), multilabel="causes", source=tmp_path / "pipes.csv")


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
    # one name or a list, alike (a string is never read as its letters)
    assert infer_groups(Dataset.from_list(ROWS), multiclass="score", multilabel="causes", regression="stars") == groups
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
    assert _prepare_error(path, config).startswith(f"{path}, line 4: Group `score`: unknown label 'S4'; known")
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


def test_a_jsonl_file_becomes_a_memory_mapped_arrow_file_in_the_cache(tmp_path):
    path = tmp_path / "a.jsonl"
    write_jsonl(path, ROWS)
    dataset = load_table(path, cache_dir=tmp_path / "cache")
    (cache_file,) = [entry["filename"] for entry in dataset.cache_files]
    assert cache_file.startswith(str(tmp_path / "cache")) and cache_file.endswith(".arrow")
    assert dataset.to_list() == ROWS
    assert load_table(path, cache_dir=tmp_path / "cache").cache_files == dataset.cache_files  # read once, reused


def test_types_come_from_every_chunk_of_a_jsonl_file(tmp_path, small_chunks):
    """A column null, empty or absent in the first chunk, or ints that turn floats later, still loads."""
    rows = [{"text": f"text {i}", "score": None, "topics": [], "stars": 1} for i in range(40)]
    rows += [{"text": "late", "score": "S2", "topics": ["wait"], "stars": 2.5, "lang": "en"}] * 3
    dataset = load_table(write_jsonl(tmp_path / "late.jsonl", rows))
    assert dataset.to_list()[-1] == rows[-1] and dataset[0]["lang"] is None
    groups = infer_groups(dataset, multiclass=["score"], multilabel=["topics"], regression=["stars"])
    assert [group.get("labels") for group in groups] == [["S2"], ["wait"], None]


@pytest.mark.parametrize(
    "late, match",
    [
        ({"score": ["S1"]}, "`score` is str on line 1 but list on line 41"),  # would become the text '["S1"]'
        ({"score": 3}, "`score` is str on line 1 but number on line 41"),  # would become '3'
        ({"score": {"a": 1}}, "`score` is str on line 1 but dict on line 41"),
    ],
)
def test_a_type_change_in_a_later_chunk_names_the_lines(tmp_path, small_chunks, late, match):
    rows = [{"text": f"text {i}", "score": "S1"} for i in range(40)] + [{"text": "late", **late}]
    with pytest.raises(ValueError, match=re.escape(f"a column holds values of mixed types: {match}; make")):
        load_table(write_jsonl(tmp_path / "mixed.jsonl", rows))


def test_a_bad_line_in_a_later_chunk_is_named(tmp_path, small_chunks):
    path = tmp_path / "bad.jsonl"
    write_jsonl(path, [{"text": f"text {i}"} for i in range(40)])
    path.write_text(path.read_text() + '{"text": "cut\n[1]\n')
    with pytest.raises(ValueError, match=re.escape(f"{path}, line 41: malformed JSON")):
        load_table(path)
    path.write_text(path.read_text().replace('{"text": "cut\n', ""))
    with pytest.raises(ValueError, match=re.escape(f"{path}, line 41: expected a JSON object per line, got list")):
        load_table(path)


def test_a_json_array_file_is_refused_on_line_1(tmp_path):
    path = tmp_path / "array.json"
    path.write_text(json.dumps(ROWS) + "\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}, line 1: expected a JSON object per line, got list")):
        load_table(path)


def test_label_errors_far_into_a_chunked_file_name_the_editor_line(tmp_path, small_chunks):
    config = tiny_config([{"name": "score", "type": "multiclass", "labels": ["S2", "S5"]}])
    lines = [json.dumps({"text": f"text {i}", "score": "S2"}) for i in range(60)]
    lines[7:7] = ["", "   "]  # blank lines: record 58 is on line 61
    lines[-1] = json.dumps({"text": "new", "score": "S4"})
    path = tmp_path / "far.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert _prepare_error(path, config) == (
        f"{path}, line 62: Group `score`: unknown label 'S4'; known labels are ['S2', 'S5']. To drop labels the "
        "model does not know, pass ignore_unknown_labels=True."
    )


@pytest.mark.parametrize(
    "rows, kwargs, message",
    [
        ([{"s": None}, {"s": None}, {"s": 3}], {"multiclass": ["s"]}, "line 3, column `s`: expected a label string or "
         "null, got 3."),
        ([{"s": None}, {"s": ["a"]}], {"multiclass": ["s"]}, "line 2, column `s`: expected a label string or null, "
         "got ['a']."),
        ([{"t": ["a"]}, {"t": ["a", None]}], {"multilabel": ["t"]}, "line 2, column `t`: expected a list of label "
         "strings or null, got ['a', None]."),
        ([{"t": None}, {"t": "a"}], {"multilabel": ["t"]}, "line 2, column `t`: expected a list of label strings or "
         "null, got 'a'."),
        ([{"t": []}, {"t": [1]}], {"multilabel": ["t"]}, "line 2, column `t`: expected a list of label strings or "
         "null, got [1]."),
    ],
)  # fmt: skip
def test_wrong_label_types_name_the_line(tmp_path, rows, kwargs, message):
    path = tmp_path / "types.jsonl"
    write_jsonl(path, rows)
    with pytest.raises(TypeError) as raised:
        infer_groups(load_table(path), source=path, **kwargs)
    assert str(raised.value) == f"{path}, {message}"


def test_infer_groups_reads_the_labels_batch_by_batch(monkeypatch):
    monkeypatch.setattr(multigroup.data.groups, "_BATCH_ROWS", 2)
    rows = [{"s": s, "t": t} for s, t in [("b", []), (None, ["y", "x"]), ("a", None), ("b", ["z"]), ("c", ["x"])]]
    groups = infer_groups(Dataset.from_list(rows), multiclass=["s"], multilabel=["t"])
    assert [group["labels"] for group in groups] == [["a", "b", "c"], ["x", "y", "z"]]
    with pytest.raises(TypeError, match=r"Row 5 \(1-based\), column `s`: expected a label string or null, got 1"):
        infer_groups(Dataset.from_list([{"s": 1}] + [{"s": None}] * 4).select([4, 3, 2, 1, 0]), multiclass=["s"])


def test_label_matrix_is_the_labels_column_as_float32(monkeypatch):
    monkeypatch.setattr(multigroup.data.groups, "_BATCH_ROWS", 2)
    dataset = Dataset.from_list(ROWS)
    config = tiny_config(infer_groups(dataset, multiclass=["score"], multilabel=["causes"], regression=["stars"]))
    prepared = prepare_dataset(dataset, make_tokenizer(), config)
    matrix = label_matrix(prepared)
    assert matrix.dtype == np.float32 and matrix.shape == (3, config.num_columns)
    np.testing.assert_array_equal(matrix, np.array([row["labels"] for row in prepared], dtype=np.float32))
