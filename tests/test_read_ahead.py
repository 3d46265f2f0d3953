"""Tokenizing ahead in a background thread (the pipeline's `read_ahead`, on by default off CPU, forced on here):
the same answers in the same order as tokenizing in turn, errors at their place naming their input, bounded
memory on an endless stream, and `multigroup predict` streaming a file through it; under transformers 4 too."""

import itertools
import json
import os
import pickle
import subprocess
import threading
import time

import pytest
from transformers import pipeline

from multigroup.cli import main
from multigroup.commands.common import load_model
from multigroup.hub_code.batching_multigroup import read_ahead as _read_ahead
from multigroup.hub_code.pipeline_multigroup import MultiGroupClassificationPipeline
from multigroup.inference import batched_logits

from conftest import MIXED_GROUPS, REPO_ROOT, WORDS, make_tokenizer, run_python, tiny_model

OLD = sorted(REPO_ROOT.glob(".venv-transformers-*/bin/python"))
TEXTS = [" ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(1 + i % 11)) for i in range(101)] + ["", "help"]


@pytest.fixture(scope="module")
def clf():
    clf = pipeline(
        "multi-group-classification", model=tiny_model(MIXED_GROUPS, "bert"), tokenizer=make_tokenizer("bert")
    )
    clf.window_batches = 2  # many windows from few texts
    return clf


def answers(clf, inputs, read_ahead: int, **kwargs):
    clf.read_ahead = read_ahead
    try:
        return list(clf(inputs, **kwargs))
    finally:
        clf.read_ahead = None


def read_ahead_threads() -> list:
    return [thread for thread in threading.enumerate() if thread.name == "multigroup-read-ahead"]


def wait_for_no_read_ahead_thread() -> bool:
    for _ in range(50):
        if not read_ahead_threads():
            return True
        time.sleep(0.1)
    return False


def test_the_default_tokenizes_in_turn_on_cpu(clf):
    assert clf.read_ahead is None and clf.device.type == "cpu"
    results = clf(iter(TEXTS), batch_size=4)
    next(results)
    assert read_ahead_threads() == []


@pytest.mark.parametrize("batch_size", [1, 3, 8])
@pytest.mark.parametrize("ahead", [1, 2, 5])
def test_reading_ahead_gives_the_same_answers_in_the_same_order(clf, batch_size, ahead):
    options = {"batch_size": batch_size, "top_k": None, "groups": ["score", "stars"]}
    plain = answers(clf, TEXTS, 0, **options)
    assert answers(clf, TEXTS, ahead, **options) == plain
    assert answers(clf, (text for text in TEXTS), ahead, **options) == plain
    assert wait_for_no_read_ahead_thread()


@pytest.mark.parametrize("ahead", [0, 2])
def test_a_bad_input_is_named_by_its_position_after_the_answers_before_it(clf, ahead):
    clf.read_ahead = ahead
    try:
        results = clf(itertools.chain(TEXTS[:20], [None], TEXTS), batch_size=2)  # windows of 4: #20 in the 6th
        got = [next(results) for _ in range(20)]
        with pytest.raises(TypeError, match=r"^Input #20 is NoneType None; every input must be a string"):
            next(results)
        with pytest.raises(TypeError, match=r"Input #1 is int 3"):
            clf(["fine", 3], batch_size=2)
    finally:
        clf.read_ahead = None
    assert got == answers(clf, TEXTS[:20], 0, batch_size=2)
    assert wait_for_no_read_ahead_thread()


def test_an_error_of_the_stream_itself_is_raised_as_is_at_its_place(clf):
    def texts():
        yield from TEXTS[:9]
        raise KeyError("the source broke")

    clf.read_ahead = 2
    try:
        results = clf(texts(), batch_size=2)
        assert len([next(results) for _ in range(8)]) == 8  # two whole windows of 4
        with pytest.raises(KeyError, match="the source broke"):
            next(results)
    finally:
        clf.read_ahead = None


def test_an_endless_stream_is_read_a_bounded_way_ahead_and_stopping_ends_the_thread(clf):
    pulled = itertools.count()
    endless = (TEXTS[next(pulled) % len(TEXTS)] for _ in itertools.repeat(None))
    clf.read_ahead = 3
    try:
        results = clf(endless, batch_size=4)  # windows of 8 texts, 2 batches
        assert len([next(results) for _ in range(5)]) == 5
        time.sleep(0.5)  # let the thread run as far ahead as it may
        ahead = next(pulled)
        time.sleep(0.3)
        # the window being answered, then at most 3 queued items (a window's start or a batch) and one in hand
        assert next(pulled) == ahead + 1 and ahead <= 8 * 5
        assert len(read_ahead_threads()) == 1
        results.close()
    finally:
        clf.read_ahead = None
    assert wait_for_no_read_ahead_thread()


def test_read_ahead_alone_keeps_order_bounds_the_queue_and_passes_errors():
    assert list(_read_ahead(iter(range(100)), 3)) == list(range(100))
    assert list(_read_ahead(iter(range(5)), 0)) == list(range(5))
    produced = []

    def numbers():
        for i in range(100):
            produced.append(i)
            yield i

    items = _read_ahead(numbers(), 2)
    assert next(items) == 0
    time.sleep(0.3)
    assert len(produced) <= 1 + 2 + 1  # the one handed out, the queue, the one waiting to go in
    items.close()

    def failing():
        yield 1
        raise ValueError("no more")

    items = _read_ahead(failing(), 2)
    assert next(items) == 1
    with pytest.raises(ValueError, match="no more"):
        next(items)
    assert wait_for_no_read_ahead_thread()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("read_ahead") / "model"
    pipeline(
        "multi-group-classification", model=tiny_model(MIXED_GROUPS, "bert"), tokenizer=make_tokenizer("bert")
    ).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("ahead", [None, 2])
def test_predict_streams_a_file_in_order_with_bad_rows_set_aside(saved, tmp_path, monkeypatch, capsys, ahead):
    monkeypatch.setattr(MultiGroupClassificationPipeline, "read_ahead", ahead)
    rows = [{"id": f"r{i}", "text": text} for i, text in enumerate(TEXTS)]
    for i in range(3, len(rows), 9):  # bad rows in every window
        rows[i] = {"id": f"r{i}", "text": None if i % 2 else 7}
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "out.jsonl"
    args = ["predict", "--model", str(saved), "--file", str(source), "--output", str(out), "--batch-size", "3"]
    assert main([*args, "--chunk-size", "7", "--on-error", "skip"]) == 0
    kept = [row for row in rows if isinstance(row["text"], str)]
    written = [json.loads(line) for line in out.read_text().splitlines()]
    model, tokenizer = load_model(str(saved))  # as predict loads it (the attention kernel may differ otherwise)
    clf = MultiGroupClassificationPipeline(model=model, tokenizer=tokenizer, batch_size=3)
    clf.window_batches = 3  # --chunk-size 7 at batch size 3: windows of 9 texts
    assert written == [{"id": row["id"], **answer} for row, answer in zip(kept, clf([r["text"] for r in kept]))]
    err = capsys.readouterr().err
    bad = [i + 1 for i, row in enumerate(rows) if not isinstance(row["text"], str)]
    assert len(bad) == 12 and f"Skipped 12 rows (lines {', '.join(map(str, bad[:10]))} and 2 more)" in err
    assert main(args) == 2  # --on-error fail: the first bad line, and the earlier output stays
    assert f"{source}, line 4: `text` must be a string, got None. Fix or drop that line" in capsys.readouterr().err
    assert [json.loads(line) for line in out.read_text().splitlines()] == written
    assert wait_for_no_read_ahead_thread()


CHECK = """
import json, sys
from transformers import pipeline
clf = pipeline("multi-group-classification", model="model", trust_remote_code=True)
clf.window_batches = 2
texts = json.loads(sys.argv[1])
plain = clf(texts, batch_size=3, top_k=None)
clf.read_ahead = 2
ahead = list(clf(iter(texts), batch_size=3, top_k=None))
try:
    list(clf(iter(texts[:7] + [None]), batch_size=3))
except TypeError as error:
    message = str(error)
print("RESULT" + json.dumps([ahead == plain, len(plain), message]))
"""


@pytest.mark.parametrize("python", OLD, ids=lambda path: path.parent.parent.name.removeprefix(".venv-transformers-"))
def test_reading_ahead_through_remote_code_under_transformers_4(python, saved):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "PYTHONNOUSERSITE": "1"}
    command = [str(python), "-I", "-c", CHECK, json.dumps(TEXTS)]
    completed = subprocess.run(command, cwd=saved.parent, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert json.loads(completed.stdout.split("RESULT")[-1]) == [
        True, len(TEXTS), "Input #7 is NoneType None; every input must be a string (use '' for none)."
    ]  # fmt: skip


def test_reading_ahead_through_remote_code_without_multigroup(saved):
    completed = run_python(CHECK.replace("json.loads(sys.argv[1])", repr(TEXTS)), cwd=saved.parent)
    assert completed.returncode == 0, completed.stderr[-3000:]
    same, count, message = json.loads(completed.stdout.split("RESULT")[-1])
    assert same and count == len(TEXTS) and message.startswith("Input #7 is NoneType None")


def test_batched_logits_reading_ahead_are_the_same():
    model, tokenizer = tiny_model(MIXED_GROUPS, "bert"), make_tokenizer("bert")
    plain = batched_logits(model, tokenizer, TEXTS, batch_size=4, read_ahead=0)
    assert plain.shape == (len(TEXTS), model.config.num_columns)
    assert (batched_logits(model, tokenizer, TEXTS, batch_size=4, read_ahead=2) == plain).all()
    assert wait_for_no_read_ahead_thread()


def test_a_pipeline_that_read_ahead_still_pickles_and_one_without_tokenizer_says_so(clf):
    assert answers(clf, TEXTS[:5], 2) == answers(clf, TEXTS[:5], 0)
    assert pickle.loads(pickle.dumps(clf))(TEXTS[:3], batch_size=2) == clf(TEXTS[:3], batch_size=2)
    bare = MultiGroupClassificationPipeline(model=tiny_model(MIXED_GROUPS, "bert"), tokenizer=None)
    bare.read_ahead = 2
    with pytest.raises(ValueError, match="This pipeline has no tokenizer: pass tokenizer="):
        bare(["fine"])
