"""The ASGI app of `multigroup serve`: `POST /predict`, `GET /health`, `GET /info`, `GET /openapi.json`, a page at /.

A request is read and checked on arrival (the same body as the Inference Endpoints handler: `read_request`), then
queued for the micro-batcher; the model's one `config.decode` answers each caller with its own options. Every bad
request is a 4xx whose JSON `{"error": ...}` says what is wrong and how to fix it; the server keeps serving.
"""

import asyncio
import json
import logging
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from ..hub_code.batching_multigroup import check_texts
from ..hub_code.handler import EXAMPLE, read_request
from .batching import MicroBatcher, split_by_length
from .schema import openapi_schema

logger = logging.getLogger("multigroup.serve")


@dataclass
class Limits:
    """What one server takes: texts per forward pass, the wait to fill one, texts per request, characters per text."""

    max_batch: int = 32
    max_wait: float = 0.005
    max_texts: int = 64
    max_chars: int = 10_000

    @property
    def max_body(self) -> int:  # bytes: every text at its longest, written as JSON escapes, and room for the rest
        return self.max_texts * (self.max_chars * 6 + 8) + 65_536


@dataclass
class Backend:
    """What is served: the config (groups and the one decode), the tokenizer, and `forward(batch) -> logits` of one
    padded batch (`tensors`: "pt" or "np", as the tokenizer returns it), from a model or an ONNX folder."""

    name: str
    config: Any
    tokenizer: Any
    forward: Callable[[Any], Any]
    max_length: int
    tensors: str = "pt"

    def logits(self, texts: list[str]) -> np.ndarray:
        """`(len(texts), num_columns)` logits: every text tokenized once, then run in sub-batches of similar length
        (little padding), each padded from those tokens."""
        logits = np.empty((len(texts), self.config.num_columns), dtype=np.float32)
        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_length)
        for part in split_by_length([len(ids) for ids in encoded["input_ids"]]):
            batch = self.tokenizer.pad({key: [values[i] for i in part] for key, values in encoded.items()},
                                       return_tensors=self.tensors)  # fmt: skip
            logits[part] = np.asarray(self.forward(batch), dtype=np.float32)
        return logits

    def answer(self, requests: list) -> list:
        """The forward passes for every request's texts, then one decode per set of options: the requests that
        share their options (most often the defaults) are decoded together, and each gets its own rows back."""
        logits = self.logits([text for request in requests for text in request.texts])
        starts = np.cumsum([0] + [len(request.texts) for request in requests])
        alike: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            alike.setdefault(json.dumps(request.options, sort_keys=True), []).append(i)
        answers: list = [None] * len(requests)
        for members in alike.values():
            rows = np.concatenate([np.arange(starts[i], starts[i + 1]) for i in members])
            try:
                decoded = self.config.decode(logits[rows], **requests[members[0]].options)
            except (ValueError, TypeError) as error:  # their options: each request that sent them gets a 400
                for i in members:
                    answers[i] = BadRequest(str(error))
                continue
            at = 0
            for i in members:
                answers[i] = decoded[at : at + len(requests[i].texts)]
                at += len(requests[i].texts)
        return answers


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def create_app(load: Callable[[], Backend], limits: Limits, on_load_error: Callable[[BaseException], None]):
    """The app; `load()` runs in a thread once the server listens, and `/health` answers 503 until it returns."""
    state: dict[str, Any] = {"backend": None}
    batcher = MicroBatcher(lambda requests: state["backend"].answer(requests), limits.max_batch, limits.max_wait)

    async def loading():
        started = time.perf_counter()
        try:
            state["backend"] = await asyncio.to_thread(load)
        except Exception as error:  # noqa: BLE001 - reported, then the server stops
            on_load_error(error)
            return
        logger.info("Model %s loaded in %.1f s: ready.", state["backend"].name, time.perf_counter() - started)

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        task = asyncio.create_task(loading())
        yield
        task.cancel()
        await batcher.stop()

    def backend() -> Backend:
        if state["backend"] is None:
            raise BadRequest("The model is still loading; retry when GET /health answers 200.", 503)
        return state["backend"]

    async def health(request: Request):
        if state["backend"] is None:
            return JSONResponse({"status": "loading"}, 503, headers={"Retry-After": "1"})
        counts = {"forward_passes": batcher.batches, "texts": batcher.texts}
        return JSONResponse({"status": "ok", "model": state["backend"].name, **counts})

    async def info(request: Request):
        served = backend()
        keys = ("name", "type", "labels", "threshold", "allow_empty", "temperature")
        groups = [{key: group[key] for key in keys if key in group} for group in served.config.groups]
        relations = getattr(served.config, "relations", None) or []
        described = {"model": served.name, "groups": groups, "relations": relations}
        return JSONResponse({**described, "limits": limits.__dict__})

    async def predict(request: Request):
        served = backend()
        inputs, options = _read(await _body(request, limits.max_body), limits, dict(request.query_params))
        request.state.texts = 1 if isinstance(inputs, str) else len(inputs)
        try:  # the options fail here, before the texts are queued
            served.config.check_options(**options)
        except (ValueError, TypeError) as error:
            raise BadRequest(str(error)) from None
        if inputs == []:  # an empty list; an empty text is a text, answered like any other
            return JSONResponse([])
        rows = await batcher.submit([inputs] if isinstance(inputs, str) else inputs, **options)
        return JSONResponse(rows[0] if isinstance(inputs, str) else rows)

    async def page(request: Request):
        return HTMLResponse(files(__package__).joinpath("page.html").read_text(encoding="utf-8"))

    async def schema(request: Request):
        served = state["backend"]
        return JSONResponse(openapi_schema(served.config.group_names if served else None, limits))

    async def error(request: Request, exception: Exception):
        if isinstance(exception, BadRequest):
            return JSONResponse({"error": str(exception)}, exception.status)
        status = exception.status_code
        if status == 404:
            message = f"No page {request.url.path}: this server answers " + ", ".join(ROUTES) + "."
        elif status == 405:
            message = f"{request.url.path} does not take {request.method}: this server answers {', '.join(ROUTES)}."
        else:
            message = exception.detail
        return JSONResponse({"error": message}, status)

    routes = [
        Route("/predict", predict, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/info", info, methods=["GET"]),
        Route("/openapi.json", schema, methods=["GET"]),
        Route("/", page, methods=["GET"]),
    ]
    handlers = {BadRequest: error, HTTPException: error}
    return RequestLog(Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers))


ROUTES = ["POST /predict", "GET /health", "GET /info", "GET /openapi.json", "GET / (a page to try the model)"]


DRAIN_BYTES = 16 * 2**20  # what is read on, and dropped, past the limit


async def _body(request: Request, limit: int) -> bytes:
    """The body, up to `limit` bytes. Past it, the rest is read and dropped (up to `DRAIN_BYTES` more) before the
    413 answer, so that a client still sending gets the answer rather than a broken connection."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > limit + DRAIN_BYTES:
            break
    if size > limit:
        raise BadRequest(f"The request body is over {limit:,} bytes; send fewer or shorter texts.", 413)
    return b"".join(chunks)


def _read(body: bytes, limits: Limits, query: dict | None = None) -> tuple[str | list[str], dict]:
    """The texts and options of a request body and its query string (`?groups=a,b&top_k=2`, read as the Inference
    Endpoints toolkit reads them; the body's `parameters` win), or a BadRequest that says what is wrong and how to
    fix it."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadRequest(f"The request body is not valid JSON ({error}); send for example {EXAMPLE}.") from None
    if query and isinstance(data, dict) and isinstance(data.get("parameters") or {}, dict):
        data = {**data, "parameters": {**query, **(data.get("parameters") or {})}}
    try:
        inputs, options = read_request(data)
    except ValueError as error:
        raise BadRequest(str(error)) from None
    texts = [inputs] if isinstance(inputs, str) else inputs
    if len(texts) > limits.max_texts:
        raise BadRequest(
            f'"inputs" holds {len(texts)} texts; this server takes at most {limits.max_texts} per request '
            "(--max-texts): split them over several requests.",
            413,
        )
    try:
        check_texts(texts, name='"inputs"[{}]'.format)
    except TypeError as error:
        raise BadRequest(str(error)) from None
    for i, text in enumerate(texts):
        where = '"inputs"' if isinstance(inputs, str) else f'"inputs"[{i}]'
        if len(text) > limits.max_chars:
            raise BadRequest(
                f"{where} has {len(text):,} characters; this server takes at most {limits.max_chars:,} per text "
                "(--max-chars): shorten it (the model reads only its first tokens anyway) or raise the limit.",
                413,
            )
    return inputs, options


class RequestLog:
    """ASGI middleware: one log line per request (client, method, path, status, texts, milliseconds)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), 500

        async def sending(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            client = ":".join(map(str, scope["client"])) if scope.get("client") else "-"
            texts = scope.get("state", {}).get("texts")
            count = "" if texts is None else f" {texts} text{'s' * (texts != 1)}"
            milliseconds = 1000 * (time.perf_counter() - started)
            logger.info("%s %s %s %d%s %.1f ms", client, scope["method"], scope["path"], status, count, milliseconds)
