"""Batch prediction on Ray Data and Spark: `MultiGroupPredictor` answers as the pipeline, on every batch kind, on a
local Ray cluster (2 CPUs, 2 actors), through `predict --engine ray`, and through Spark's `mapInPandas` in
`local[2]` mode."""

import json
import math
import shutil
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from helpers import write_jsonl
from multigroup.cli import main
from multigroup.distributed import MultiGroupPredictor
from multigroup.pipeline_multigroup import MultiGroupClassificationPipeline

from conftest import MIXED_GROUPS, WORDS, make_tokenizer, tiny_model

PREDICTED = ["score", "score_score", "topics", "topics_scores", "stars"]


def _texts(count: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(1, 12))) for _ in range(count)]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The mixed groups (multiclass, multilabel with thresholds, regression) on a tiny CamemBERT, and its ONNX."""
    from multigroup.onnx import export_onnx

    path = tmp_path_factory.mktemp("engines")
    model, tokenizer = tiny_model(MIXED_GROUPS), make_tokenizer()
    model.save_pretrained(path / "model")
    tokenizer.save_pretrained(path / "model")
    export_onnx(path / "model", path / "onnx")
    return path


def _expected(saved, texts: list[str]) -> dict[str, list]:
    """The pipeline's predictions of `texts` as columns: what every engine must give."""
    from multigroup.inference import prediction_columns

    model, tokenizer = tiny_model(MIXED_GROUPS), make_tokenizer()
    pipe = MultiGroupClassificationPipeline(model=model.eval(), tokenizer=tokenizer)
    return prediction_columns(pipe(texts, batch_size=4))


def assert_columns_match(got: dict[str, list], want: dict[str, list]) -> None:
    """Labels equal, scores and values within 1e-4."""
    for name, column in want.items():
        assert len(got[name]) == len(column), name
        for value, expected in zip(got[name], column):
            if name in ("score", "topics"):
                assert list(value) == list(expected), name
            else:
                assert np.allclose(np.asarray(value, float), np.asarray(expected, float), atol=1e-4), name


def test_the_predictor_answers_as_the_pipeline_on_every_batch_kind(saved):
    texts = _texts(13)
    want = _expected(saved, texts)
    predictor = MultiGroupPredictor(saved / "model", batch_size=4)
    ids = np.arange(13)
    for batch in ({"id": ids, "text": np.array(texts, dtype=object)}, pd.DataFrame({"id": ids, "text": texts}),
                  pa.table({"id": ids, "text": texts})):  # fmt: skip
        out = predictor(batch)
        assert type(out) is type(batch)
        columns = out.to_pydict() if isinstance(out, pa.Table) else {name: list(out[name]) for name in out.keys()}
        assert list(columns) == ["id", "text", *PREDICTED]  # every input column kept, in front
        assert list(columns["id"]) == list(range(13)) and list(columns["text"]) == texts
        assert_columns_match(columns, want)
    onnx = MultiGroupPredictor(saved / "onnx", batch_size=4)(pa.table({"text": texts})).to_pydict()
    assert_columns_match(onnx, want)


def test_a_bad_text_fails_naming_its_row_or_is_kept_with_nulls_and_the_reason(saved):
    frame = pd.DataFrame({"text": ["good food", None, "bad", 3]})
    with pytest.raises(ValueError, match=r"Row 1 of this batch: `text` must be a string, got None\. .*on_error"):
        MultiGroupPredictor(saved / "model")(frame)
    out = MultiGroupPredictor(saved / "model", on_error="skip")(frame)
    errors = [None if pd.isna(error) else error for error in out["error"]]  # pandas may show a null string as NaN
    assert errors == [None, "`text` must be a string, got None", None, "`text` must be a string, got 3"]
    assert out["score"].isna().tolist() == [False, True, False, True]
    assert_columns_match(
        {name: out[name][[0, 2]].tolist() for name in PREDICTED}, _expected(saved, ["good food", "bad"])
    )


def test_options_are_checked_when_the_worker_starts(saved, tmp_path):
    with pytest.raises(ValueError, match="not a multilabel group"):
        MultiGroupPredictor(saved / "model", threshold={"score": 0.5})
    with pytest.raises(ValueError, match='`on_error` must be "fail" or "skip"'):
        MultiGroupPredictor(saved / "model", on_error="drop")
    with pytest.raises(ValueError, match=r"no `body` column \(its columns: \['text'\]\); pass text_column"):
        MultiGroupPredictor(saved / "model", text_column="body")({"text": np.array(["a"])})
    with pytest.raises(ValueError, match=r"already has the columns \['score'\]"):
        MultiGroupPredictor(saved / "model")(pa.table({"text": ["a"], "score": [1]}))
    only = MultiGroupPredictor(saved / "model", groups=["topics"], top_k=None)(pa.table({"text": ["a"]}))
    assert only.column_names == ["text", "topics", "topics_scores"] and len(only.column("topics")[0]) == 3


# -- Ray Data, on a local cluster ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray():
    """Ray, on a local cluster of 3 CPUs for this module: 2 actors and Ray Data's own tasks."""
    import logging

    ray = pytest.importorskip("ray", reason="Ray Data is not installed: pip install 'multigroup[ray]'")
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order, context.enable_progress_bars = True, False
    yield ray
    ray.shutdown()


def test_ray_data_with_two_actors_answers_as_the_pipeline(saved, ray):
    texts = _texts(40, seed=1)
    want = _expected(saved, texts)
    for model in ("model", "onnx"):
        rows = (
            ray.data.from_items([{"n": i, "text": text} for i, text in enumerate(texts)])
            .map_batches(MultiGroupPredictor, fn_constructor_kwargs={"model": str(saved / model), "threads": 1},
                         compute=ray.data.ActorPoolStrategy(size=2), batch_size=8, num_cpus=1)
            .take_all()
        )  # fmt: skip
        assert [row["n"] for row in rows] == list(range(40)), model
        assert_columns_match({name: [row[name] for row in rows] for name in PREDICTED}, want)


def test_predict_engine_ray_writes_what_the_local_predict_writes(saved, ray, tmp_path, capsys):
    texts = _texts(30, seed=2)
    rows = [{"id": f"r{i}", "text": text} for i, text in enumerate(texts)]
    rows[4], rows[9] = {"id": "bad", "text": None}, {"id": "empty", "text": ""}
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    written = {}
    for engine in ("local", "ray"):
        out = tmp_path / f"{engine}.jsonl"
        args = ["--engine", engine, "--workers", "2"] if engine == "ray" else []
        command = ["predict", "--model", str(saved / "model"), "--file", source, "--output", str(out)]
        assert main([*command, "--on-error", "skip", "--chunk-size", "8", *args]) == 0
        err = capsys.readouterr().err
        assert "Skipped 1 row (line 5)" in err and "1 row with an empty `text` (line 10)" in err, engine
        written[engine] = [json.loads(line) for line in out.read_text().splitlines()]
        side = [json.loads(line) for line in (tmp_path / f"{engine}.skipped.jsonl").read_text().splitlines()]
        assert [(line["line"], line["reason"], line["record"]["id"]) for line in side] == [
            (5, "`text` must be a string, got None", "bad")
        ]
    local, on_ray = written["local"], written["ray"]
    assert (
        [line["id"] for line in on_ray]
        == [line["id"] for line in local]
        == [r["id"] for r in rows if r["text"] is not None]
    )
    for mine, theirs in zip(on_ray, local):
        assert mine["score"]["label"] == theirs["score"]["label"]
        assert [t["label"] for t in mine["topics"]] == [t["label"] for t in theirs["topics"]]
        assert math.isclose(mine["stars"]["value"], theirs["stars"]["value"], abs_tol=1e-4)

    # the default, fail: the bad line stops the run, named as the local predict names it, and writes nothing
    out = tmp_path / "failed.parquet"
    assert (
        main(["predict", "--onnx", str(saved / "onnx"), "--file", source, "--output", str(out), "--engine", "ray"])
        == 2
    )
    assert f"{source}, line 5: `text` must be a string, got None. Fix or drop that line" in capsys.readouterr().err
    assert not out.exists()


def test_predict_engine_ray_parquet_holds_the_local_columns(saved, ray, tmp_path):
    import pyarrow.parquet as pq

    texts = _texts(25, seed=3)
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": texts}), source)
    out = tmp_path / "ray.parquet"
    url = source.as_uri()  # file:///...: a URL, read by Ray Data as it reads s3:// or gs://
    command = ["predict", "--model", str(saved / "model"), "--file", url, "--output", str(out)]
    assert main([*command, "--engine", "ray", "--batch-size", "4"]) == 0
    table = pq.read_table(out).to_pydict()
    assert list(table) == ["id", *PREDICTED] and table["id"] == list(range(1, 26))
    assert_columns_match(table, _expected(saved, texts))


def test_predict_engine_ray_refuses_actors_that_leave_no_cpu_to_read(saved, ray, tmp_path, capsys):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "a"}])
    command = ["predict", "--model", str(saved / "model"), "--file", source, "--output", str(tmp_path / "out.jsonl")]
    assert main([*command, "--engine", "ray", "--workers", "3"]) == 2
    assert "The Ray cluster has 3 CPUs and the actors ask for 3 (--workers x --threads)" in capsys.readouterr().err


# -- Spark, local[2] -------------------------------------------------------------------------------------------------


def test_spark_map_in_pandas_answers_as_the_pipeline(saved, monkeypatch):
    pytest.importorskip("pyspark", reason="pyspark is not installed: pip install 'multigroup[spark]'")
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java: `make test` installs Debian's default-jre-headless")
    from pyspark.sql import SparkSession

    from multigroup.distributed import spark_schema

    texts = _texts(30, seed=4)
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)  # Spark's Python workers: this interpreter, with multigroup
    builder = SparkSession.builder.master("local[2]").appName("multigroup-test").config("spark.ui.enabled", "false")
    spark = builder.getOrCreate()
    try:
        frame = spark.createDataFrame(pd.DataFrame({"n": range(30), "text": texts})).repartition(2, "n")
        model = str(saved / "model")

        def predict(batches):
            predictor = MultiGroupPredictor(model, batch_size=4, threads=1)  # once per partition's Python worker
            return map(predictor, batches)

        out = frame.mapInPandas(predict, spark_schema(model, frame.schema)).toPandas().sort_values("n")
    finally:
        spark.stop()
    assert out.columns.tolist() == ["n", "text", *PREDICTED] and out["n"].tolist() == list(range(30))
    assert_columns_match({name: out[name].tolist() for name in PREDICTED}, _expected(saved, texts))
