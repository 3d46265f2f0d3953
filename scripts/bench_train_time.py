"""Training time per epoch of `multigroup train` at its defaults (as a user types it): this checkout against an
earlier multigroup's, same data, batch and seed.

    git worktree add /tmp/multigroup-0.3.0 6a5398d      # main as round 3 found it (0.3.0)
    python scripts/bench_train_time.py --data-dir ../shared/data/semeval16_absa_rest_en --old-src /tmp/multigroup-0.3.0/src

Each arm is the command in its own process (the old one imports the earlier multigroup), interleaved, REPEATS
times; the time is the Trainer's own `train_runtime` (loading, tokenizing and threshold tuning left out). Prints
the median of each arm and their ratio, and writes scripts/results/bench_train_time_<data>.{json,md}.
"""

import argparse
import statistics
import tempfile
from pathlib import Path

from _harness import RESULTS, interleaved, machine, write_results
from bench_quality import BATCH_SIZE, spec_from_data, train_with_the_cli

from multigroup.data import load_table

EPOCHS = 1
REPEATS = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--old-src", required=True, type=Path, help="the src/ folder of the earlier multigroup")
    args = parser.parse_args()
    groups = spec_from_data(load_table(str(args.data_dir / "train.jsonl")))

    def train(arm: str) -> float:
        env = {"PYTHONPATH": str(args.old_src.resolve())} if arm == "old" else {}
        with tempfile.TemporaryDirectory() as output:
            seconds = train_with_the_cli(groups, args.data_dir, EPOCHS, 0, Path(output), env=env)
        print(f"{arm}: {seconds:.1f} s", flush=True)
        return seconds

    times = interleaved({arm: lambda arm=arm: train(arm) for arm in ("old", "new")}, REPEATS, 0, measure=lambda r: r())
    old, new = statistics.median(times["old"]), statistics.median(times["new"])
    table = (
        f"| arm | train s, {EPOCHS} epoch, batch {BATCH_SIZE} (median of {REPEATS}) |\n|---|---|\n"
        f"| {args.old_src} | {old:.1f} |\n| this checkout | {new:.1f} |\n\nratio (this / old): {new / old:.3f}"
    )
    results = {"data": args.data_dir.name, "old_src": str(args.old_src), "times": times, "ratio": new / old,
               "machine": machine()}  # fmt: skip
    write_results(RESULTS / f"bench_train_time_{args.data_dir.name}", results, table)


if __name__ == "__main__":
    main()
