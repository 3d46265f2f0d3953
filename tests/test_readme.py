"""Every ```python block of README.md runs as shown, offline (issue 16).

Each block runs in a fresh namespace, in a fresh working folder that holds what a user of that block has: the Hub
checkpoints it names (as local folders at the same relative path, `almanach/camembert-base`, which transformers
loads as a folder before it thinks of the Hub), the files it reads and the trained models it loads, all tiny and
built here. A block whose first line is a comment saying it `continues the block above` runs after that block, in
the same namespace (the README says so to its reader too); any other block must stand alone, so a name it uses
without defining it fails its test. Tracebacks point at README.md's own lines. Beyond running, each block's
results are checked against what the README says about them (`CHECKS`, by block id: the nearest heading above it).
"""

import ast
import json
import re
import shutil
from dataclasses import dataclass

import pytest
from transformers import AutoModel, pipeline

from helpers import save_plain, tokenizer_for, write_jsonl
from multigroup.cli import main

from conftest import REPO_ROOT, make_tokenizer, tiny_model

README = REPO_ROOT / "README.md"
CONTINUES = re.compile(r"#.*\bcontinues the block above\b")


@dataclass
class Block:
    id: str
    line: int  # README line of the block's first code line
    code: str
    continues: "Block | None"


def readme_blocks(text: str) -> list[Block]:
    """The ```python blocks, each named by the nearest heading above it (`-2`, `-3` for a heading's later ones)."""
    blocks, heading, seen, fence, previous = [], "readme", {}, None, None
    for number, line in enumerate(text.splitlines(), 1):
        if fence is None and line.startswith("```"):  # any fence: a bash block's `# comment` is no heading
            fence, code, start = line[3:].strip(), [], number + 1
        elif fence is not None and line.strip() == "```":
            if fence == "python":
                seen[heading] = seen.get(heading, 0) + 1
                name = heading if seen[heading] == 1 else f"{heading}-{seen[heading]}"
                continues = previous if code and CONTINUES.match(code[0]) else None
                previous = Block(name, start, "\n".join(code) + "\n", continues)
                blocks.append(previous)
            fence = None
        elif fence is not None:
            code.append(line)
        elif line.startswith("#"):
            heading = re.sub(r"[^a-z0-9]+", "-", line.lstrip("#").lower().replace("'", "")).strip("-")
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))


def run_block(block: Block, namespace: dict) -> dict:
    """Execute `block` (after the block it continues) in `namespace`; return each top-level expression's value,
    keyed by its source as `ast.unparse` writes it (`clf(text, groups=['emotions'])`)."""
    outputs = run_block(block.continues, namespace) if block.continues else {}
    tree = ast.parse("\n" * (block.line - 1) + block.code, filename=str(README))  # README's line numbers
    for i, node in enumerate(tree.body):
        if isinstance(node, ast.Expr):  # `expr` -> `__outputs__[source] = expr`
            target = ast.Subscript(
                ast.Name("__outputs__", ast.Load()), ast.Constant(ast.unparse(node.value)), ast.Store()
            )
            tree.body[i] = ast.copy_location(ast.Assign([target], node.value), node)
    namespace["__outputs__"] = outputs
    exec(compile(ast.fix_missing_locations(tree), str(README), "exec"), namespace)
    del namespace["__outputs__"]
    return outputs


# ---- what a user of the README has, tiny and offline --------------------------------------------------------------

DEMO_GROUPS = [  # the groups of `make demo`'s outputs/demo-model
    {"name": "global_score", "type": "multiclass", "labels": ["S1", "S2", "S3", "S4", "S5"]},
    {"name": "emotions", "type": "multilabel",
     "labels": ["anger", "confusion", "frustration", "gratitude", "relief", "satisfaction"]},
    {"name": "causes", "type": "multilabel",
     "labels": ["information", "online_service", "opening_hours", "paperwork", "staff_attitude", "waiting_time"]},
]  # fmt: skip
ABSA_GROUPS = [  # the groups of the README's CLI example (`multigroup train ... --multiclass polarity ...`)
    {"name": "polarity", "type": "multiclass", "labels": ["negative", "neutral", "positive"]},
    {"name": "aspects", "type": "multilabel", "labels": ["ambience", "food", "price", "service"]},
]
# One train.jsonl for every block that reads it: the article's columns and the SemEval ones side by side (each block
# names the columns it uses). Texts in the tiny tokenizer's words.
ROWS = [
    ("the food was great", "S1", ["E1"], ["C1"], "positive", ["food"]),
    ("slow rude staff and bad service", "S5", ["E2", "E3"], ["C2"], "negative", ["service"]),
    ("i love it", "S1", ["E1"], [], "positive", []),
    ("very expensive but good", "S3", [], ["C3"], "neutral", ["price", "food"]),
    ("bad", "S4", ["E2"], [], "negative", []),
    ("the waiter was rude and slow and the place was bad", "S5", ["E3"], ["C2"], "negative", ["service"]),
    ("cheap good food", "S2", ["E1"], ["C3", "C1"], "positive", ["food", "price"]),
    ("i hate the place", "S4", ["E2"], ["C4"], "negative", ["ambience"]),
    ("great staff", "S2", [], ["C2"], "positive", ["service"]),
    ("the price was very very expensive", "S3", ["E3"], ["C3"], "neutral", ["price"]),
]
COLUMNS = ("text", "global_score", "emotions", "causes", "polarity", "aspects")


def save_encoder(family: str, path) -> None:
    """A plain tiny checkpoint of `family` with its tokenizer, as a Hub encoder repo holds them."""
    save_plain(family, AutoModel, path)
    tokenizer = tokenizer_for(family)
    tokenizer.model_max_length = 32  # the tiny models' positions
    tokenizer.save_pretrained(path)


def save_multigroup(groups, path) -> None:
    """A saved multigroup model with its tokenizer (what Trainer plus the tokenizer, or the pipeline, save)."""
    tiny_model(groups, family="bert").save_pretrained(path)
    make_tokenizer("bert").save_pretrained(path)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("readme_world")
    save_encoder("camembert", root / "almanach/camembert-base")
    minilm = root / "sentence-transformers/all-MiniLM-L6-v2"
    save_encoder("bert", minilm)
    (minilm / "1_Pooling").mkdir()
    pooling = {"word_embedding_dimension": 32, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True}
    (minilm / "1_Pooling/config.json").write_text(json.dumps(pooling))
    save_multigroup(DEMO_GROUPS, root / "outputs/demo-model")  # `make demo`
    shutil.copytree(root / "outputs/demo-model", root / "you/your-model")  # pushed to the Hub
    (root / "examples/data").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "examples/data/public_service_reviews.jsonl", root / "examples/data")
    write_jsonl(root / "train.jsonl", [dict(zip(COLUMNS, row)) for row in ROWS])
    write_jsonl(root / "validation.jsonl", [dict(zip(COLUMNS, row)) for row in ROWS[::-2]])
    # out/onnx, as the README's `multigroup export onnx --model out/model --output out/onnx` writes it
    cli_model = tmp_path_factory.mktemp("cli_model")
    save_multigroup(ABSA_GROUPS, cli_model)
    assert main(["export", "onnx", "--model", str(cli_model), "--output", str(root / "out/onnx")]) == 0
    return root


# ---- what the README says each block gives -----------------------------------------------------------------------


def output(outputs: dict, source: str):
    assert source in outputs, f"the block no longer shows `{source}`; it shows {list(outputs)}"
    return outputs[source]


def check_quickstart(ns, outputs, cwd):
    config = ns["config"]
    assert config.hidden_size == 32  # the local stand-in was loaded, nothing else
    assert output(outputs, "config.num_columns") == config.num_columns == 27
    assert output(outputs, "config.group_slices['emotions']") == slice(5, 15)
    (encoded,) = [value for source, value in outputs.items() if source.startswith("config.encode_labels(")]
    assert list(encoded) == [0, 1, 0, 0, 0] + [1, 0, 1] + [0] * 7 + [0] * 12


def check_auto_class(ns, outputs, cwd):
    assert output(outputs, "model.config.pooling") == "mean"
    assert ns["model"].config.encoder_type == "bert" and ns["model"].config.hidden_size == 32
    assert ns["model"].config.group_names == [group["name"] for group in ns["GROUPS"]]


def check_lora(ns, outputs, cwd):
    assert ns["trainer"].state.global_step > 0
    assert (cwd / "out/adapter/adapter_config.json").is_file()
    merged = pipeline("multi-group-classification", model="out/model", trust_remote_code=True)
    assert list(merged("the food was great")) == ["polarity", "aspects"]


def check_trainer(ns, outputs, cwd):
    trainer = ns["trainer"]
    evaluations = [log for log in trainer.state.log_history if "eval_mean_f1_macro" in log]
    assert len(evaluations) == trainer.args.num_train_epochs  # eval_strategy="epoch", with the group metrics
    assert {"eval_global_score_f1_macro", "eval_emotions_f1_micro", "eval_causes_f1_macro"} <= set(evaluations[-1])


def check_pipeline(ns, outputs, cwd):
    names = [group["name"] for group in DEMO_GROUPS]
    one = output(outputs, "clf(text)")
    assert list(one) == names and one["global_score"]["label"] in DEMO_GROUPS[0]["labels"]
    many = output(outputs, "clf(texts, batch_size=32)")
    assert isinstance(many, list) and len(many) == len(ns["texts"]) and all(list(row) == names for row in many)
    every = output(outputs, "clf(text, top_k=None)")
    assert [len(every[name]) for name in names] == [5, 6, 6]
    assert list(output(outputs, "clf(text, groups=['emotions'])")) == ["emotions"]
    assert list(output(outputs, "clf(text, threshold=0.3)")) == names


def check_dataset_columns(ns, outputs, cwd):
    ds = ns["ds"]
    assert len(ds) == 80
    assert ds.column_names == [
        "text", "global_score", "global_score_score", "emotions", "emotions_scores", "causes", "causes_scores"
    ]  # fmt: skip
    assert ds.features["global_score"].dtype == "string" and ds.features["global_score_score"].dtype == "float64"
    assert ds.features["emotions"].feature.dtype == "string"
    assert ds.features["emotions_scores"].feature.dtype == "float64"


def check_onnx(ns, outputs, cwd):
    (answer,) = output(outputs, "clf(['Great sushi, slow service.'], top_k=None)")
    assert list(answer) == ["polarity", "aspects"] and len(answer["aspects"]) == 4


def check_batch_predictor(ns, outputs, cwd):
    (frame,) = [value for key, value in outputs.items() if key.startswith("predictor(")]
    names = [group["name"] for group in DEMO_GROUPS]
    assert frame.columns.tolist()[:2] == ["id", "text"] and len(frame) == 2  # the input's columns kept, in front
    assert all(name in frame.columns for name in names)


def check_batch_ray(ns, outputs, cwd):
    rows = ns["rows"]
    assert [row["text"] for row in rows] == ["Great sushi, slow service.", "Cold food."]
    assert all(group["name"] in row for row in rows for group in DEMO_GROUPS)


def check_batch_spark(ns, outputs, cwd):
    assert callable(ns["predict"]) and callable(ns["spark_schema"])


CHECKS = {
    "quickstart-the-articles-three-groups": check_quickstart,
    "quickstart-the-articles-three-groups-2": check_auto_class,
    "encoders-lora-and-the-usual-tools": check_lora,
    "in-python-a-plain-trainer": check_trainer,
    "predicting-with-or-without-multigroup-installed": check_pipeline,
    "predicting-with-or-without-multigroup-installed-2": check_dataset_columns,
    "onnx-runtime": check_onnx,
    "batch-prediction-across-machines-ray-data-and-spark": check_batch_predictor,
    "batch-prediction-across-machines-ray-data-and-spark-2": check_batch_ray,
    "batch-prediction-across-machines-ray-data-and-spark-3": check_batch_spark,
}


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_readme_block_runs_as_shown(block, world, tmp_path, monkeypatch):
    cwd = tmp_path / "work"
    shutil.copytree(world, cwd)
    monkeypatch.chdir(cwd)
    namespace = {"__name__": "__readme__"}
    outputs = run_block(block, namespace)
    if block.id in CHECKS:
        CHECKS[block.id](namespace, outputs, cwd)


def test_every_block_is_found_and_checked():
    assert len(BLOCKS) >= 7
    assert sorted(CHECKS) == sorted(block.id for block in BLOCKS), "a README block without a check, or a stale id"


def test_a_fragment_fails(tmp_path, monkeypatch):
    """The harness lends a block nothing: a block that uses a name it does not define raises."""
    monkeypatch.chdir(tmp_path)
    fragment = Block("fragment", 1, "clf(texts, batch_size=32)\n", None)
    with pytest.raises(NameError, match="clf"):
        run_block(fragment, {"__name__": "__readme__"})
    continued = Block("continued", 2, "# continues the block above\ny = x\n", Block("first", 1, "x = 1\n", None))
    namespace = {"__name__": "__readme__"}
    run_block(continued, namespace)
    assert namespace["y"] == 1


def test_the_one_command_block_trains_and_evaluates_as_shown_with_test_only_labels(tmp_path, monkeypatch, capsys):
    """The README's `multigroup train` and `multigroup evaluate` lines, as written, on files whose test split holds
    an aspect the training file never had (as SemEval laptops' does): scored as a miss, and said."""
    import shlex

    from transformers import CamembertConfig, CamembertModel

    text = README.read_text(encoding="utf-8")
    block = text.split("### One command", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    lines = [line.split("  #")[0].strip() for line in block.replace("\\\n", " ").splitlines()]
    commands = {line.split()[1]: line for line in lines if line.startswith("multigroup ")}
    monkeypatch.chdir(tmp_path)
    encoder = tmp_path / "encoder"
    config = CamembertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                             intermediate_size=37, max_position_embeddings=66)  # fmt: skip
    CamembertModel(config).save_pretrained(encoder)
    make_tokenizer().save_pretrained(encoder)
    rows = [{"text": "the food was great", "polarity": "positive", "aspects": ["FOOD#QUALITY"]},
            {"text": "slow rude staff", "polarity": "negative", "aspects": ["SERVICE#GENERAL"]},
            {"text": "very expensive", "polarity": "negative", "aspects": ["FOOD#PRICES"]},
            {"text": "i love it", "polarity": "positive", "aspects": []}]  # fmt: skip
    write_jsonl(tmp_path / "train.jsonl", rows)
    write_jsonl(tmp_path / "validation.jsonl", rows)
    write_jsonl(tmp_path / "test.jsonl", [*rows, dict(rows[0], aspects=["AMBIENCE#GENERAL"])])
    for name in ("train", "evaluate"):
        argv = shlex.split(commands[name].replace('"$ENCODER"', str(encoder)))[1:]
        assert main(argv) == 0, name
    out = capsys.readouterr().out
    assert "aspects: 1 gold label(s) in test.jsonl are not among the model's labels: scored as misses." in out
    assert json.loads((tmp_path / "out/eval/metrics.json").read_text())["unknown_labels"]["scored_as_misses"] == {
        "aspects": 1
    }
