"""`multigroup serve`: a real server in a subprocess, answered over HTTP as a client would, against the pipeline."""

import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from transformers import pipeline

from helpers import Server, call, free_port

from conftest import MIXED_GROUPS

pytest.importorskip("uvicorn", reason="multigroup serve needs the serve extra: pip install 'multigroup[serve]'")

TEXTS = ["the food was great", "slow rude staff and bad service", "i love it", "cheap", "ok", ""]


@pytest.fixture(scope="module")
def reference(model_dir):
    return pipeline("multi-group-classification", model=str(model_dir), trust_remote_code=True)


@pytest.fixture(scope="module")
def server(model_dir):
    served = Server("--model", str(model_dir), "--max-texts", "8", "--max-chars", "200", "--max-wait-ms", "20")
    yield served
    served.stop()


def assert_same(answer, expected):
    """Equal labels, keys and order; scores equal to float tolerance (a batch pads texts differently)."""
    if isinstance(expected, dict):
        assert isinstance(answer, dict) and list(answer) == list(expected)
        for key in expected:
            assert_same(answer[key], expected[key])
    elif isinstance(expected, list):
        assert isinstance(answer, list) and len(answer) == len(expected)
        for got, want in zip(answer, expected):
            assert_same(got, want)
    elif isinstance(expected, float):
        assert answer == pytest.approx(expected, abs=1e-5)
    else:
        assert answer == expected


GOOD = [
    {"inputs": "the food was great"},
    {"inputs": TEXTS, "parameters": {"top_k": 2}},
    {"inputs": "i love it", "parameters": {"groups": ["topics"], "threshold": {"topics": 0.6}, "top_k": None}},
    {"inputs": ["cheap", "ok"], "parameters": {"groups": "score,stars", "threshold": "0.3"}},  # query-string style
    {"inputs": []},
    {"inputs": ""},  # an empty text is a text: one prediction, as `clf("")` gives
    {"inputs": ["", "   "]},
]


def expected(reference, body):
    """The pipeline's answer to a request body (query-string-style values read as the server reads them)."""
    parameters = dict(body.get("parameters", {}))
    if isinstance(parameters.get("groups"), str):
        parameters["groups"] = parameters["groups"].split(",")
    if isinstance(parameters.get("threshold"), str):
        parameters["threshold"] = float(parameters["threshold"])
    return reference(body["inputs"], **parameters)


@pytest.mark.parametrize("body", GOOD, ids=range(len(GOOD)))
def test_answers_are_the_pipeline_answers(server, reference, body):
    status, answer = call(server.port, "/predict", body)
    assert status == 200
    assert_same(answer, expected(reference, body))


def test_concurrent_requests_with_different_options_each_get_their_own(server, reference):
    """Requests of one forward pass are decoded once per set of options: each still gets its own answer."""
    bodies = [body for body in GOOD if body["inputs"] != []] * 3  # 18 requests, 6 sets of options, interleaved
    before = call(server.port, "/health")[1]
    with ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(pool.map(lambda body: call(server.port, "/predict", body), bodies))
    for body, (status, answer) in zip(bodies, answers):
        assert status == 200
        assert_same(answer, expected(reference, body))
    assert call(server.port, "/health")[1]["forward_passes"] - before["forward_passes"] < len(bodies)


BAD = [
    (b"{not json", 400, "not valid JSON"),
    (b"\xff\xfe", 400, "not valid JSON"),
    ([1, 2], 400, 'JSON object with "inputs"'),
    ({"text": "hi"}, 400, 'JSON object with "inputs"'),
    ({"inputs": 3}, 400, '"inputs" must be a text or a list of texts'),
    ({"inputs": ["a", 3]}, 400, '"inputs"[1] is int 3'),
    ({"inputs": "a", "parameters": {"groups": ["nope"]}}, 400, "Unknown group 'nope'"),
    ({"inputs": "a", "parameters": {"top_k": 0}}, 400, "`top_k` must be a positive int"),
    ({"inputs": "a", "parameters": {"threshold": 2}}, 400, "strictly between 0 and 1"),
    ({"inputs": "a", "parameters": {"threshold": {"score": 0.5}}}, 400, "not a multilabel group"),
    ({"inputs": "a", "parameters": {"temperature": 2}}, 400, "Unknown parameter(s) ['temperature']"),
    ({"inputs": "a", "parameters": [1]}, 400, '"parameters" must be a JSON object'),
    ({"inputs": ["a"] * 9}, 413, "at most 8 per request (--max-texts)"),
    ({"inputs": ["a", "x" * 201]}, 413, '"inputs"[1] has 201 characters; this server takes at most 200'),
    (b"x" * 2_000_000, 413, "The request body is over"),
]


@pytest.mark.parametrize(("body", "status", "message"), BAD, ids=range(len(BAD)))
def test_bad_requests_get_a_4xx_that_says_why(server, body, status, message):
    got, answer = call(server.port, "/predict", body)
    assert (got, list(answer)) == (status, ["error"])
    assert message in answer["error"]
    assert call(server.port, "/predict", {"inputs": "still serving"})[0] == 200


def test_the_query_string_sets_the_parameters(server, reference):
    """`?groups=a,b&top_k=2` as the Inference Endpoints toolkit reads it; the body's `parameters` win over it."""
    status, answer = call(server.port, "/predict?groups=topics,score&top_k=2", {"inputs": "i love it"})
    assert status == 200
    assert_same(answer, reference("i love it", groups=["topics", "score"], top_k=2))
    status, answer = call(server.port, "/predict?top_k=all", {"inputs": "i love it", "parameters": {"top_k": 1}})
    assert status == 200
    assert_same(answer, reference("i love it", top_k=1))


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("groups=nonexistent", "Unknown group 'nonexistent'"),
        ("top_k=banana", "`top_k` must be a whole number of labels or `all`, got 'banana'"),
        ("topk=2", "Unknown parameter(s) ['topk']"),
    ],
)
def test_a_bad_query_string_gets_a_400_that_says_why(server, query, message):
    status, answer = call(server.port, f"/predict?{query}", {"inputs": "i love it"})
    assert status == 400 and message in answer["error"]


def test_a_body_over_the_limit_is_answered_while_the_client_still_sends(server):
    """The server reads on past the limit before its 413, so a client still sending gets the answer, never a reset
    connection (before, about one 2 MB body in 20 got `Connection reset by peer`)."""
    for _ in range(30):
        status, answer = call(server.port, "/predict", b"x" * 2_000_000)
        assert status == 413 and "The request body is over" in answer["error"]


def test_unknown_routes_and_methods_are_json_4xx(server):
    status, answer = call(server.port, "/nope")
    assert status == 404 and "POST /predict" in answer["error"]
    status, answer = call(server.port, "/predict", method="GET")
    assert status == 405 and "does not take GET" in answer["error"]


def test_concurrent_requests_share_forward_passes_and_get_their_own_answers(server, reference):
    before = call(server.port, "/health")[1]
    texts = [f"{text} {i}" for i in range(4) for text in TEXTS]  # 24 different texts, one request each
    with ThreadPoolExecutor(len(texts)) as pool:
        answers = list(pool.map(lambda text: call(server.port, "/predict", {"inputs": text}), texts))
    for text, (status, answer) in zip(texts, answers):
        assert status == 200
        assert_same(answer, reference(text))
    after = call(server.port, "/health")[1]
    assert after["texts"] - before["texts"] == len(texts)
    assert after["forward_passes"] - before["forward_passes"] < len(texts)


def test_info_and_openapi_describe_the_model(server):
    status, info = call(server.port, "/info")
    assert status == 200
    assert [group["name"] for group in info["groups"]] == [group["name"] for group in MIXED_GROUPS]
    assert info["groups"][1]["threshold"] == [0.4, 0.5, 0.6] and info["limits"]["max_texts"] == 8
    assert info["relations"] == [] and "temperature" not in info["groups"][0]  # this model has neither
    status, schema = call(server.port, "/openapi.json")
    assert status == 200 and schema["openapi"].startswith("3.")
    parameters = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    groups = parameters["properties"]["parameters"]["properties"]["groups"]
    assert groups["items"]["enum"] == ["score", "topics", "stars"]


def test_sigterm_answers_the_request_in_flight_and_logs_each_request(model_dir):
    served = Server("--model", str(model_dir), "--max-wait-ms", "1500")  # a request waits 1.5 s for company
    answers = []
    thread = threading.Thread(target=lambda: answers.append(call(served.port, "/predict", {"inputs": "in flight"})))
    thread.start()
    time.sleep(0.5)
    log = served.stop()
    thread.join()
    assert answers and answers[0][0] == 200 and list(answers[0][1]) == ["score", "topics", "stars"]
    # Shut down cleanly, then (uvicorn's way) ended by the same signal, as its supervisor expects.
    assert served.process.returncode in (0, -signal.SIGTERM) and "Application shutdown complete" in log
    request_lines = [line for line in log.splitlines() if " POST /predict " in line]
    assert len(request_lines) == 1 and " 200 1 text " in request_lines[0]


def test_health_answers_503_until_the_model_is_loaded(model_dir):
    """In-process, with a model whose loading waits for a signal: /health and /predict say it is loading."""
    import uvicorn

    from multigroup.commands.serve import load_backend
    from multigroup.serving.app import Limits, create_app

    release, port = threading.Event(), free_port()

    def load():
        release.wait(30)
        return load_backend(type("Args", (), {"onnx": None, "model": str(model_dir), "threads": None}))

    app = create_app(load, Limits(), on_load_error=print)
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_config=None))
    thread = threading.Thread(target=server.run)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        assert call(port, "/health") == (503, {"status": "loading"})
        status, answer = call(port, "/predict", {"inputs": "early"})
        assert status == 503 and "still loading" in answer["error"]
        release.set()
        deadline = time.monotonic() + 60
        while call(port, "/health")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert call(port, "/predict", {"inputs": "late"})[0] == 200
    finally:
        release.set()
        server.should_exit = True
        thread.join()


def test_a_wrong_model_fails_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "multigroup.cli", "serve", "--model", str(tmp_path / "nope")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "no folder" in result.stderr


def test_onnx_folder_serves_the_same_answers(model_dir, reference, tmp_path):
    pytest.importorskip("onnxruntime")
    from multigroup.onnx import export_onnx

    export_onnx(str(model_dir), str(tmp_path / "onnx"))
    served = Server("--onnx", str(tmp_path / "onnx"))
    try:
        for body in GOOD[:3]:
            status, answer = call(served.port, "/predict", body)
            assert status == 200
            assert_same(answer, reference(body["inputs"], **body.get("parameters", {})))
    finally:
        served.stop()


def test_a_forward_pass_is_decoded_once_per_set_of_options():
    """`Backend.answer`: requests that share their options are decoded together and each gets its own rows back; a
    set of options the decode refuses is a 400 for the requests that sent it, the others are answered."""
    import numpy as np

    from multigroup.serving.app import Backend, BadRequest
    from multigroup.serving.batching import Request

    calls = []

    class Config:
        def decode(self, rows, **options):
            calls.append(options)
            if options.get("top_k") == 0:
                raise ValueError("`top_k` must be a positive int")
            return [(int(row[0]), options.get("top_k")) for row in rows]

    backend = Backend("stub", Config(), None, None, 0)
    backend.logits = lambda texts: np.array([[float(text)] for text in texts])
    sent = [(["0", "1"], {}), (["2"], {"top_k": 2}), (["3"], {}), (["4"], {"top_k": 0}), ([], {}),
            (["5", "6"], {"top_k": 2})]  # fmt: skip
    requests = [Request(texts, options, None) for texts, options in sent]
    answers = backend.answer(requests)
    assert answers[0] == [(0, None), (1, None)] and answers[2] == [(3, None)] and answers[4] == []
    assert answers[1] == [(2, 2)] and answers[5] == [(5, 2), (6, 2)]
    assert isinstance(answers[3], BadRequest) and "`top_k` must be a positive int" in str(answers[3])
    assert sorted(map(str, calls)) == sorted(map(str, [{}, {"top_k": 2}, {"top_k": 0}]))  # one decode per set


def test_callers_answered_by_a_pass_can_join_the_next_one():
    """The batch after a forward pass waits `max_wait` from that pass's end, not only from its oldest request's
    arrival: a request queued during the pass and one sent right after its answer share the next pass."""
    import asyncio

    from multigroup.serving.batching import MicroBatcher

    def work(requests):
        time.sleep(0.6 if requests[0].texts == ["first"] else 0.0)
        return [request.texts for request in requests]

    async def main():
        batcher = MicroBatcher(lambda requests: [(work(requests), len(requests))] * len(requests), max_wait=0.3)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(["first"]))  # waits 0.3 s for company, then runs 0.6 s
        await asyncio.sleep(0.4)
        queued = asyncio.ensure_future(batcher.submit(["queued during the pass"]))  # its own wait ends at 0.7 s
        await first  # the pass ends at 0.9 s
        late = await batcher.submit(["sent after the answer"])
        await queued
        await batcher.stop()
        return late, batcher.batches

    (texts, size), batches = asyncio.run(main())
    assert size == 2 and texts == [["queued during the pass"], ["sent after the answer"]] and batches == 2
