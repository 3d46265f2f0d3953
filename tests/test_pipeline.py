import pytest
from transformers import pipeline

from multigroup import MultiGroupClassificationPipeline

from conftest import MIXED_GROUPS, make_tokenizer, tiny_model


@pytest.fixture(scope="module")
def clf():
    return pipeline("multi-group-classification", model=tiny_model(MIXED_GROUPS), tokenizer=make_tokenizer())


def test_pipeline_class_and_single_text_structure(clf):
    assert isinstance(clf, MultiGroupClassificationPipeline)
    out = clf("the food was great")
    assert list(out) == ["score", "topics", "stars"]
    assert set(out["score"]) == {"label", "score"} and out["score"]["label"] in {"bad", "ok", "good"}
    assert isinstance(out["score"]["score"], float) and 0 < out["score"]["score"] < 1
    assert isinstance(out["topics"], list) and set(out["stars"]) == {"value"}


def test_batches_keep_input_order_whatever_the_batch_size(clf):
    texts = ["slow rude staff and bad service", "i love it", "the food", "very expensive but good", "help"]
    one_by_one = [clf(text) for text in texts]
    for batch_size in (1, 2, 8):
        batched = clf(texts, batch_size=batch_size)
        assert [row["score"]["label"] for row in batched] == [row["score"]["label"] for row in one_by_one]
        for got, want in zip(batched, one_by_one):
            assert got["stars"]["value"] == pytest.approx(want["stars"]["value"], abs=1e-5)


def test_top_k_groups_and_threshold(clf):
    every = clf("i love it", top_k=None)
    assert [len(every[name]) for name in ("score", "topics")] == [3, 3]
    scores = [p["score"] for p in every["score"]]
    assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1.0, abs=1e-5)
    assert len(clf("i love it", top_k=2)["score"]) == 2
    assert list(clf("i love it", groups=["stars"])) == ["stars"]
    assert len(clf("i love it", threshold=1e-6)["topics"]) == 3
    assert clf("i love it", threshold=1 - 1e-6)["topics"] == []


def test_long_text_is_truncated_not_an_error(clf):
    out = clf("the food was great " * 500)
    assert set(out) == {"score", "topics", "stars"}


def test_empty_list_gives_empty_list(clf):
    assert clf([]) == []


@pytest.mark.parametrize(
    "inputs, kwargs, error, match",
    [
        (None, {}, TypeError, "any iterable of strings, got NoneType"),
        (3, {}, TypeError, "got int 3"),
        (["fine", 4], {}, TypeError, "Input #1 is int"),
        ("fine", {"groups": ["nope"]}, ValueError, "Unknown group 'nope'"),
        ("fine", {"top_k": -1}, ValueError, "`top_k` must be a positive int"),
        ("fine", {"threshold": 2}, ValueError, "strictly between 0 and 1"),
    ],
)
def test_bad_calls_raise_clear_errors(clf, inputs, kwargs, error, match):
    with pytest.raises(error, match=match):
        clf(inputs, **kwargs)
