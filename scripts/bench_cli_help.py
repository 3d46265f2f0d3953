"""How long `multigroup --help` and each `multigroup CMD --help` take, as a user's shell runs them.

    python scripts/bench_cli_help.py
    python scripts/bench_cli_help.py --src /tmp/old/src --output /tmp/before   # an earlier checkout's src/

Each command is a fresh process (the installed `multigroup` script next to this Python), run once to warm the
disk cache, then REPEATS times in turn with the others; median and max wall time of each. The target is TARGET_S on
a 2-core machine: `import multigroup` loads neither torch nor transformers, and the commands import them in `run`
alone. The load average before and after says whether other work shared the CPU.
Writes scripts/results/bench_cli_help.{json,md}.
"""

import argparse
import os
import statistics
import subprocess
from pathlib import Path

from _harness import RESULTS, interleaved, machine, multigroup_script, write_results

from multigroup.cli import COMMANDS  # light: no torch, no transformers

REPEATS = 7
TARGET_S = 1.5


def measure(repeats: int, src: str | None) -> dict[str, list[float]]:
    script = multigroup_script()
    env = {**os.environ, "PYTHONPATH": str(Path(src).resolve())} if src else dict(os.environ)
    runs = {"multigroup --help": [script, "--help"]}
    runs |= {f"multigroup {name} --help": [script, name, "--help"] for name in COMMANDS}
    quiet = {"env": env, "check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    arms = {label: lambda argv=argv: subprocess.run(argv, **quiet) for label, argv in runs.items()}
    return interleaved(arms, repeats, warmup=1)  # the warm-up: the disk cache, .pyc files


def markdown(results: dict) -> str:
    load = results["load_average"]
    lines = [
        f"Machine: {results['machine']['cores']} cores, {results['machine']['platform']}, Python "
        f"{results['machine']['python']}; code: {results['src']}. {results['repeats']} runs per command, interleaved, after a warm-up; "
        f"1-minute load average {load['before']:.2f} before, {load['after']:.2f} after.",
        "",
        "| command | median (s) | max (s) | target |",
        "|---|---|---|---|",
    ]
    for label, row in results["commands"].items():
        lines.append(f"| `{label}` | {row['median_s']:.3f} | {row['max_s']:.3f} | < {TARGET_S} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--src", help="time this src/ folder (put first on PYTHONPATH) instead of the installed one")
    parser.add_argument("--output", default=str(RESULTS / "bench_cli_help"), help="written as .json and .md")
    args = parser.parse_args()
    before = os.getloadavg()[0]
    samples = measure(args.repeats, args.src)
    results = {
        "machine": machine(libraries=()),
        "src": args.src or "installed",
        "repeats": args.repeats,
        "load_average": {"before": before, "after": os.getloadavg()[0]},
        "commands": {
            label: {"median_s": statistics.median(values), "max_s": max(values), "runs_s": values}
            for label, values in samples.items()
        },
    }
    write_results(args.output, results, markdown(results))


if __name__ == "__main__":
    main()
