"""`multigroup predict` on 20,000 SemEval texts: local PyTorch, Ray Data actors, and ONNX Runtime (fp32, int8).

    python scripts/bench_distributed.py --model MODEL --data-dir ../shared/data/semeval16_absa_rest_en [--onnx DIR]

Each arm is the command itself, run in a subprocess, one after another (nothing else running), timed from start to
end (loading included: what a user waits for): `local` (2 threads), `ray` (`--engine ray --workers 2 --threads 1`,
a local Ray cluster started by the command), `ray_1_worker` (`--workers 1 --threads 2`), and with `--onnx` (a folder `multigroup export onnx --quantize` wrote)
`onnx_fp32` and `onnx_int8`. The texts: the data folder's train, validation and test sentences repeated to 20,000.
Labels are compared with the `local` arm's (fp32 ONNX should give the same; int8 within its F1 budget). Peak
resident memory, sampled every 0.2 s: the command's process, and the largest Ray actor.
Writes scripts/results/bench_distributed.{json,md} (or --output).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import RESULTS, machine, repeat_to, write_results

COUNT = 20_000


def arms(model: str, onnx: str | None) -> dict[str, list[str]]:
    out = {
        "local": ["--model", model],
        "ray": ["--model", model, "--engine", "ray", "--workers", "2", "--threads", "1"],
        "ray_1_worker": ["--model", model, "--engine", "ray", "--workers", "1", "--threads", "2"],
    }
    if onnx:
        out |= {"onnx_fp32": ["--onnx", onnx], "onnx_int8": ["--onnx", onnx, "--int8"]}
    return out


def run_sampled(command: list[str], env: dict) -> dict[str, float]:
    """Run `command`, sampling every 0.2 s the resident memory of it and its descendants (a local Ray cluster's
    processes are); returns the peak of the command's own process and of the largest actor, in MB."""
    import psutil

    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    driver, actors = 0, 0
    parent = psutil.Process(process.pid)
    while process.poll() is None:
        try:
            driver = max(driver, parent.memory_info().rss)
            for child in parent.children(recursive=True):
                if "MapWorker" in " ".join(child.cmdline()):
                    actors = max(actors, child.memory_info().rss)
        except psutil.Error:  # a process that ended between the listing and the reading
            pass
        time.sleep(0.2)
    stderr = process.stderr.read()
    if process.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{stderr[-3000:]}")
    return {"peak_rss_mb": driver / 2**20, "peak_actor_rss_mb": actors / 2**20 or None}


def labels(path: Path) -> list[str]:
    """Each line's predictions without scores: the group's label, or its list of labels."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        rows.append(json.dumps({name: value["label"] if isinstance(value, dict) and "label" in value
                                else [v["label"] for v in value] if isinstance(value, list) else None
                                for name, value in row.items() if name != "id"}))  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--onnx", help="an exported ONNX folder of --model, with model_int8.onnx")
    parser.add_argument("--output", default=str(RESULTS / "bench_distributed"))
    args = parser.parse_args()

    texts = [json.loads(line)["text"] for split in ("train", "validation", "test")
             for line in (Path(args.data_dir) / f"{split}.jsonl").read_text().splitlines() if line.strip()]  # fmt: skip
    texts = repeat_to(texts, COUNT)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "2"}
    results = {"machine": machine(("torch", "transformers", "ray", "onnxruntime")), "texts": len(texts),
               "data": args.data_dir, "model": args.model, "arms": {}}  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "texts.jsonl"
        source.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)))
        for name, options in arms(args.model, args.onnx).items():
            out = Path(folder) / f"{name}.jsonl"
            command = [sys.executable, "-m", "multigroup.cli", "predict", *options, "--file", str(source),
                       "--output", str(out)]  # fmt: skip
            start = time.perf_counter()
            peaks = run_sampled(command, env)
            seconds = time.perf_counter() - start
            results["arms"][name] = {"seconds": seconds, "texts_per_s": len(texts) / seconds, "labels": labels(out),
                                     **peaks}  # fmt: skip
            print(f"{name}: {seconds:.1f} s, {len(texts) / seconds:.0f} texts/s", flush=True)
    reference = {"onnx_int8": "onnx_fp32"}
    for name, arm in results["arms"].items():
        base = results["arms"][reference.get(name, "local")]
        arm["same_labels_as"] = reference.get(name, "local")
        arm["texts_with_other_labels"] = sum(a != b for a, b in zip(arm["labels"], base["labels"]))
    for name, arm in results["arms"].items():
        del arm["labels"]
        arm["speed_vs_local"] = arm["texts_per_s"] / results["arms"]["local"]["texts_per_s"]
    write_results(args.output, results, markdown(results))


def markdown(results: dict) -> str:
    lines = [f"{results['texts']} texts from {results['data']}, model {results['model']}; {results['machine']}", "",
             "| arm | seconds | texts/s | x local | peak MB (command / largest actor) | texts with other labels (against) |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for name, arm in results["arms"].items():
        actor = f"{arm['peak_actor_rss_mb']:.0f}" if arm["peak_actor_rss_mb"] else "-"
        lines.append(
            f"| {name} | {arm['seconds']:.1f} | {arm['texts_per_s']:.0f} | {arm['speed_vs_local']:.2f} | "
            f"{arm['peak_rss_mb']:.0f} / {actor} | {arm['texts_with_other_labels']} ({arm['same_labels_as']}) |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
