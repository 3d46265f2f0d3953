"""Load benchmark of `multigroup serve`: single-text requests from a second process at several concurrencies.

    python scripts/bench_serve.py --data-dir ../shared/data/semeval16_absa_rest_en

For each encoder (the real MiniLM, and a camembert-base-sized encoder with random weights; the article's three
groups; served by PyTorch, and the camembert-base-sized one also exported and served by ONNX Runtime), it:
  1. measures the in-process pipeline's throughput at batch size 32 on the same texts (the server not running), and
     that of the server's own model path (`Backend.answer`: tokenize, cut by length, forward, decode) on the texts in
     a random order, 32 at a time, as 32 concurrent callers hand them over: the pipeline sorts all 1,000 by length
     first, which no server of single-text requests can;
  2. starts `multigroup serve` (default flags) and, from a client process (asyncio, HTTP/1.1 keep-alive, one
     connection per concurrent caller), sends single-text requests for --seconds at each concurrency: throughput,
     p50 / p95 latency;
  3. at the highest concurrency again with 10% bad requests mixed in: every good answer is compared with the
     in-process pipeline's (labels equal, scores within 1e-4), and 5xx answers and dropped connections are counted.
Writes scripts/results/bench_serve.{json,md}.
"""

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import RESULTS, build, compare, load_texts, machine, p95, timed, tokenizer, write_results

BAD_BODIES = [
    b'{"inputs": ',
    b'{"text": "no inputs"}',
    b'{"inputs": ["fine", 3]}',
    b'{"inputs": "x", "parameters": {"groups": ["nope"]}}',
    b'{"inputs": "x", "parameters": {"top_k": 0}}',
    json.dumps({"inputs": "x" * 20_000}).encode(),
]


async def request(reader, writer, body: bytes) -> tuple[int, bytes]:
    writer.write(
        b"POST /predict HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def caller(port: int, jobs, deadline: float, results: dict) -> None:
    connection = None
    while time.perf_counter() < deadline:
        body, expected = next(jobs)
        try:
            connection = connection or await asyncio.open_connection("127.0.0.1", port)
            started = time.perf_counter()
            status, answer = await request(*connection, body)
        except (ConnectionError, asyncio.IncompleteReadError, IndexError, ValueError):
            results["dropped"] += 1
            connection = None
            continue
        results["statuses"][status] = results["statuses"].get(status, 0) + 1
        if expected is None:
            continue
        results["latencies"].append(time.perf_counter() - started)
        if status != 200 or not same(json.loads(answer), expected):
            results["wrong"] += 1
    if connection:
        connection[1].close()


def same(answer, expected) -> bool:
    found = compare(answer, expected)
    return found["same_labels"] and found["max_score_diff"] <= 1e-4


def load(port: int, jobs, concurrency: int, seconds: float) -> dict:
    results = {"statuses": {}, "latencies": [], "wrong": 0, "dropped": 0}

    async def main():
        deadline = time.perf_counter() + seconds
        await asyncio.gather(*(caller(port, jobs, deadline, results) for _ in range(concurrency)))

    started, cpu = time.perf_counter(), time.process_time()
    asyncio.run(main())
    elapsed, latencies = time.perf_counter() - started, results.pop("latencies")
    return {
        "concurrency": concurrency,
        "client_cores": round((time.process_time() - cpu) / elapsed, 2),  # the load's own share of the machine
        "requests": sum(results["statuses"].values()),
        "good_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p95_ms": round(1000 * p95(latencies), 1),
        "server_errors": sum(count for status, count in results["statuses"].items() if status >= 500),
        **results,
    }


def client(port: int, expected_file: str, concurrency: int, seconds: float, bad_share: float, seed: int) -> dict:
    """The load, from a second process that imports neither torch nor the model: `python bench_serve.py --client`."""
    command = [sys.executable, __file__, "--client", str(port), expected_file, str(concurrency), str(seconds),
               str(bad_share), str(seed)]  # fmt: skip
    return json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


def jobs_of(texts: list[str], expected: list, bad_share: float = 0.0, seed: int = 0):
    rng = random.Random(seed)
    while True:
        i = rng.randrange(len(texts))
        if rng.random() < bad_share:
            yield rng.choice(BAD_BODIES), None
        else:
            yield json.dumps({"inputs": texts[i]}).encode(), expected[i]


def health(port: int, timeout: float = 10) -> dict:
    """The server's /health answer; raises OSError while it is not up (or answers 503, loading)."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=timeout) as response:
        return json.loads(response.read())


def wait_healthy(port: int, process) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            health(port, timeout=2)
            return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not become healthy")


def arrival_order_per_s(folder: str, texts: list[str], size: int = 32) -> float:
    """Texts/s of the server's model path in process: `Backend.answer` on the texts in a seeded random order,
    `size` at a time, default options."""
    from argparse import Namespace

    from multigroup.commands.serve import load_backend
    from multigroup.serving.batching import Request

    backend = load_backend(Namespace(model=folder, onnx=None, threads=None))
    order = random.Random(0).sample(texts, len(texts))
    chunks = [[Request([text], {}, None) for text in order[i : i + size]] for i in range(0, len(order), size)]
    backend.answer(chunks[0])  # warm-up
    return len(texts) / timed(lambda: [backend.answer(chunk) for chunk in chunks])


def counted(port: int, run, *args) -> dict:
    """`run(*args)`'s results with the texts per forward pass the server ran meanwhile (from its /health)."""
    before = health(port)
    results = run(*args)
    after = health(port)
    passes = after["forward_passes"] - before["forward_passes"]
    return {**results, "texts_per_pass": round((after["texts"] - before["texts"]) / passes, 1) if passes else None}


def bench_encoder(arm: str, texts: list[str], args) -> dict:
    """`arm`: an encoder ("minilm", "camembert-base-size"), served by PyTorch, or with ":onnx" by ONNX Runtime
    (":onnx-int8": its int8 graph, answers checked against the int8 graph's in process)."""
    from multigroup.pipeline_multigroup import MultiGroupClassificationPipeline

    encoder, _, backend = arm.partition(":")
    folder = tempfile.mkdtemp(prefix=f"bench_serve_{encoder}_")
    model, tok = build("multigroup", encoder=encoder), tokenizer()
    clf = MultiGroupClassificationPipeline(model=model, tokenizer=tok)
    clf.save_pretrained(folder)
    expected = clf(texts, batch_size=32)  # the answers every server answer is checked against
    clf(texts[:64], batch_size=32)
    pipeline_per_s = len(texts) / timed(clf, texts, batch_size=32)
    del model, clf
    source = ["--model", folder]
    arrival_per_s = None if backend else round(arrival_order_per_s(folder, texts), 1)
    if backend in ("onnx", "onnx-int8"):
        from multigroup.onnx import OnnxMultiGroupClassifier, export_onnx

        int8 = backend == "onnx-int8"  # the fast recipe, unmeasured: random weights have no F1 to keep
        export_onnx(folder, f"{folder}-onnx", quantize=int8)
        source = ["--onnx", f"{folder}-onnx", *(["--int8"] if int8 else [])]
        if int8:  # its answers are the int8 graph's, in process: the server must give those
            expected = OnnxMultiGroupClassifier(f"{folder}-onnx", quantized=True)(texts, batch_size=32)
    port = 8700 + len(arm)
    command = [sys.executable, "-m", "multigroup.cli", "serve", *source, "--port", str(port)]
    log = open(Path(folder) / "serve.log", "w")  # one line per request: a pipe nobody reads would fill up and stall it
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        wait_healthy(port, process)
        expected_file = Path(folder) / "expected.json"
        expected_file.write_text(json.dumps({"texts": texts, "expected": expected}))
        client(port, expected_file, 8, 3, 0.0, 0)  # warm-up
        runs = [counted(port, client, port, expected_file, c, args.seconds, 0.0, c) for c in args.concurrency]
        mixed = client(port, expected_file, max(args.concurrency), args.seconds, 0.1, 99)
    finally:
        process.terminate()
        process.wait(60)
    top = {run["concurrency"]: run["good_per_s"] for run in runs}
    return {
        "encoder": arm,
        "pipeline_batch32_per_s": round(pipeline_per_s, 1),
        "arrival_order_batch32_per_s": arrival_per_s,
        "runs": runs,
        "mixed_10pct_bad": mixed,
        "ratio_top_concurrency_vs_pipeline": round(top[max(top)] / pipeline_per_s, 2),
        "ratio_c16_vs_c1": round(top[16] / top[1], 2) if 16 in top and 1 in top else None,
        "ratio_top_concurrency_vs_arrival_order": round(top[max(top)] / arrival_per_s, 2) if arrival_per_s else None,
    }


def markdown(results: dict) -> str:
    lines = [
        "| encoder | concurrency | requests/s | p50 ms | p95 ms | 5xx | wrong | dropped | texts per pass |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for bench in results["encoders"]:
        for run in [
            *bench["runs"],
            {**bench["mixed_10pct_bad"], "concurrency": f"{bench['mixed_10pct_bad']['concurrency']} +10% bad"},
        ]:
            lines.append(
                f"| {bench['encoder']} | {run['concurrency']} | {run['good_per_s']} | {run['p50_ms']} | {run['p95_ms']} | {run['server_errors']} | {run['wrong']} | {run['dropped']} | {run.get('texts_per_pass', '')} |"
            )
    lines.append("")
    for bench in results["encoders"]:
        lines.append(
            f"- {bench['encoder']}: in-process pipeline at batch 32: {bench['pipeline_batch32_per_s']} texts/s; server at the top concurrency / pipeline = {bench['ratio_top_concurrency_vs_pipeline']}x; concurrency 16 / concurrency 1 = {str(bench['ratio_c16_vs_c1']) + 'x' if bench['ratio_c16_vs_c1'] else 'not run'}; the client process used {bench['runs'][-1].get('client_cores')} cores at the top concurrency"
            + (
                f"; the server's model path in process, texts in arrival order 32 at a time: {bench['arrival_order_batch32_per_s']} texts/s, server at the top concurrency / that = {bench['ratio_top_concurrency_vs_arrival_order']}x"
                if bench.get("arrival_order_batch32_per_s")
                else ""
            )
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    if sys.argv[1:2] == ["--client"]:
        port, expected_file, concurrency, seconds, bad_share, seed = sys.argv[2:]
        data = json.loads(Path(expected_file).read_text())
        jobs = jobs_of(data["texts"], data["expected"], float(bad_share), int(seed))
        print(json.dumps(load(int(port), jobs, int(concurrency), float(seconds))))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="a SemEval-2016 folder (its test and train texts); default: sample texts")
    parser.add_argument(
        "--encoders",
        nargs="+",
        default=["minilm", "camembert-base-size", "camembert-base-size:onnx", "camembert-base-size:onnx-int8"],
        help="encoders served by PyTorch; with `:onnx` (`:onnx-int8`), exported and served by ONNX Runtime (--onnx)",
    )
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 8, 16, 32])
    parser.add_argument("--seconds", type=float, default=15, help="per concurrency level")
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--output", default="bench_serve", help="results name in scripts/results (without suffix)")
    args = parser.parse_args()
    texts = load_texts(args.data_dir)[: args.texts]
    results = {"machine": machine(), "texts": len(texts), "seconds": args.seconds, "encoders": []}
    for encoder in args.encoders:
        results["encoders"].append(bench_encoder(encoder, texts, args))
        print(json.dumps(results["encoders"][-1], indent=1), flush=True)
    write_results(RESULTS / args.output, results, markdown(results))


if __name__ == "__main__":
    main()
