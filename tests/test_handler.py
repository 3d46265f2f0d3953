"""The Inference Endpoints handler, loaded the way huggingface-inference-toolkit loads it (the folder first on
`sys.path`, `handler.py` imported from its file, `EndpointHandler(folder)`, each request's parsed body passed to it,
any exception answered as HTTP 400 `{"error": str(exception)}`), under transformers 5 and 4.51.3."""

import json
import sys

import pytest
from transformers import pipeline

from helpers import OLD_PYTHONS, run_isolated

from conftest import MIXED_GROUPS, make_tokenizer, tiny_model

TOOLKIT = """
import importlib.util, json, sys
model_dir = sys.argv[1]
spec = importlib.util.spec_from_file_location("handler.EndpointHandler", f"{model_dir}/handler.py")
sys.path.insert(0, model_dir)
module = importlib.util.module_from_spec(spec)
sys.modules["handler.EndpointHandler"] = module
spec.loader.exec_module(module)
endpoint = module.EndpointHandler(model_dir)
answers = []
for body in json.loads(sys.argv[2]):
    try:
        answers.append([200, endpoint(body)])
    except Exception as error:
        answers.append([400, {"error": str(error)}])
print("RESULT" + json.dumps(answers))
"""
GOOD = [
    {"inputs": "the food was great"},
    {"inputs": ["i love it", "slow rude staff and bad service", "the food was great"], "parameters": {"top_k": 2}},
    {"inputs": "i love it", "parameters": {"groups": ["topics"], "threshold": {"topics": 0.6}, "top_k": None}},
    {"inputs": []},
]
QUERY = [  # parameters from the query string, as the toolkit converts them
    ({"inputs": "i love it", "parameters": {"groups": "score,stars", "top_k": 3}},
     {"groups": ["score", "stars"], "top_k": 3}),
    ({"inputs": "i love it", "parameters": {"threshold": "0.6", "top_k": "all"}}, {"threshold": 0.6, "top_k": None}),
    ({"inputs": "i love it", "parameters": {"top_k": "2"}}, {"top_k": 2}),  # `multigroup serve` passes strings on
]  # fmt: skip
BAD = [
    ({"text": "hello"}, 'must be a JSON object with "inputs"'),
    ({"inputs": 3}, '"inputs" must be a text or a list of texts, got int'),
    ({"inputs": ["ok", None]}, "Input #1 is NoneType None; every input must be a string"),
    ({"inputs": "x", "parameters": {"topk": 2}},
     "Unknown parameter(s) ['topk']; this model takes ['top_k', 'groups', 'threshold']"),
    ({"inputs": "x", "parameters": {"groups": ["colour"]}},
     "Unknown group 'colour'; this model's groups are ['score', 'topics', 'stars']"),
    ({"inputs": "x", "parameters": {"top_k": 0}}, "`top_k` must be a positive int or None"),
    ({"inputs": "x", "parameters": {"groups": 1}}, "Unknown group '1'"),  # `?groups=1`, made an int by the toolkit
    ({"inputs": "x", "parameters": {"threshold": 1.5}}, "must be a probability strictly between 0 and 1, got 1.5"),
    ({"inputs": "x", "parameters": {"threshold": "high"}},
     "`threshold` must be a probability such as 0.4, got 'high'"),
    ({"inputs": "x", "parameters": {"top_k": "banana"}}, "`top_k` must be a whole number of labels or `all`"),
]  # fmt: skip


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("endpoint") / "model"
    model, tokenizer = tiny_model(MIXED_GROUPS, "bert", initializer_range=0.5), make_tokenizer("bert")
    clf = pipeline("multi-group-classification", model=model, tokenizer=tokenizer)
    clf.save_pretrained(path)
    expected = [clf(body["inputs"], **body.get("parameters", {})) for body in GOOD]
    expected += [clf(body["inputs"], **converted) for body, converted in QUERY]
    return path, json.loads(json.dumps(expected))


@pytest.mark.parametrize("python", [sys.executable, *OLD_PYTHONS], ids=lambda p: "5" if p == sys.executable else "4.x")
def test_the_handler_answers_as_the_pipeline_does_when_loaded_the_toolkits_way(python, folder):
    path, expected = folder
    requests = GOOD + [body for body, _ in QUERY] + [body for body, _ in BAD]
    completed = run_isolated(python, TOOLKIT, path.parent, str(path), json.dumps(requests))
    assert completed.returncode == 0, completed.stderr[-3000:]
    answers = json.loads(completed.stdout.split("RESULT")[-1])
    good = answers[: len(expected)]
    assert [status for status, _ in good] == [200] * len(expected)
    for (_, answer), wanted in zip(good, expected):
        assert json.dumps(answer, sort_keys=True) == json.dumps(wanted, sort_keys=True) or _close(answer, wanted)
    for (status, body), (_, message) in zip(answers[len(expected) :], BAD):
        assert status == 400 and message in body["error"], (body, message)


def _close(answer, wanted) -> bool:
    """Same structure and labels, scores within 1e-5 (another transformers may differ in the last float bits)."""
    if isinstance(wanted, dict):
        return answer.keys() == wanted.keys() and all(_close(answer[k], wanted[k]) for k in wanted)
    if isinstance(wanted, list):
        return len(answer) == len(wanted) and all(_close(a, w) for a, w in zip(answer, wanted))
    if isinstance(wanted, float):
        return abs(answer - wanted) <= 1e-5
    return answer == wanted
