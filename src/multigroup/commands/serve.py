"""Serve a saved model over HTTP: POST /predict, GET /health, a page at / to try it (needs multigroup[serve]).

Concurrent requests are micro-batched: their texts go through the model in one forward pass (at most --max-batch
texts, waiting at most --max-wait-ms for a batch to fill). The request body is the Inference Endpoints handler's:
{"inputs": "a text" or ["a text", ...], "parameters": {"top_k": 2, "groups": ["topics"], "threshold": 0.4}}.
"""

import logging
import sys


def register(parser) -> None:
    from .common import add_model_arguments

    add_model_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=8000, help="the port to listen on")
    parser.add_argument("--max-batch", type=int, default=32, help="at most this many texts per forward pass")
    parser.add_argument(
        "--max-wait-ms",
        type=float,
        default=5.0,
        help="how long a batch waits for more requests, after its first one arrived or the previous batch ended "
        "(whichever is later)",
    )
    parser.add_argument("--max-texts", type=int, default=64, help="at most this many texts per request (else 413)")
    parser.add_argument(
        "--max-chars", type=int, default=10_000, help="at most this many characters per text (else 413)"
    )
    parser.add_argument("--threads", type=int, help="CPU threads for the model (default: torch's or ONNX Runtime's)")


def run(args, extra: list[str]) -> int:
    try:
        import uvicorn
    except ImportError:
        raise ValueError("`multigroup serve` needs the serve extra: pip install 'multigroup[serve]'") from None
    from ..serving.app import Limits, create_app

    for flag in ("max_batch", "max_texts", "max_chars"):
        if getattr(args, flag) < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}.")
    if args.max_wait_ms < 0:
        raise ValueError(f"--max-wait-ms must be 0 or more, got {args.max_wait_ms}.")
    check_source(args)  # a wrong --model or --onnx fails here, in one line, before the server starts
    limits = Limits(args.max_batch, args.max_wait_ms / 1000, args.max_texts, args.max_chars)
    failure = []

    def stop(error: BaseException) -> None:
        failure.append(error)
        server.should_exit = True

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(lambda: load_backend(args), limits, stop)
    config = uvicorn.Config(
        app, host=args.host, port=args.port, access_log=False, log_config=None, timeout_graceful_shutdown=30
    )
    server = uvicorn.Server(config)
    server.run()  # returns after SIGINT or SIGTERM, once the requests in flight are answered
    if failure:
        print(f"multigroup serve: error: the model could not be loaded: {failure[0]}", file=sys.stderr)
        return 1
    return 0


def check_source(args) -> None:
    """The quick checks: the ONNX folder holds a model, or `--model` names a config this machine can read."""
    from .. import MultiGroupConfig
    from .common import check_onnx, reading_model

    check_onnx(args)
    if args.onnx:
        return
    with reading_model(args.model):
        MultiGroupConfig.from_pretrained(args.model)


def load_backend(args):
    """The model (or ONNX folder) as the server runs it: the config and a `logits(texts)` function."""
    from ..serving.app import Backend

    if args.onnx:
        from .common import load_onnx

        runner = load_onnx(args, threads=args.threads)
        return Backend(args.onnx, runner.config, runner.tokenizer, runner.run, runner.max_length, "np")
    import torch
    from transformers.utils.logging import disable_progress_bar

    from ..hub_code.pipeline_multigroup import MultiGroupClassificationPipeline
    from .common import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    disable_progress_bar()  # one log line per event: no "Loading weights" bar in the server's log
    model, tokenizer = load_model(args.model)
    pipe = MultiGroupClassificationPipeline(model=model, tokenizer=tokenizer)
    return Backend(
        args.model,
        model.config,
        tokenizer,
        lambda batch: pipe.forward({"model_inputs": dict(batch)})["logits"],
        pipe._max_length(),
    )
