"""Training time of `multigroup train --loss-weighting projected` against the default (`balanced`), same data.

    python scripts/bench_projected_time.py --data-dir ../shared/data/semeval16_absa_laptops_en

Each arm is `multigroup train` as a user types it (MiniLM, the quality benchmark's groups and batch size, 1 epoch,
seed 0), in its own process, interleaved after a warm-up round, REPEATS times, each round starting with the other
arm; prints the median of `train_runtime`
(the Trainer's own timing, from the log) per arm and their ratio. Run it alone: other work on the machine moves it.
Writes scripts/results/projected/train_time_DATA.{json,md}.
"""

import argparse
import statistics
import tempfile
from pathlib import Path

from _harness import RESULTS, interleaved, machine, write_results
from bench_quality import BATCH_SIZE, spec_from_data, train_with_the_cli

ARMS = ("balanced", "projected")
EPOCHS = 1
REPEATS = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="folder with train.jsonl and validation.jsonl")
    args = parser.parse_args()

    from multigroup.data import load_table

    data_dir = Path(args.data_dir)
    groups = spec_from_data(load_table(data_dir / "train.jsonl"))
    with tempfile.TemporaryDirectory() as work:

        def arm(weighting: str):
            extra = ["--loss-weighting", weighting]
            return lambda: train_with_the_cli(groups, data_dir, EPOCHS, 0, Path(work) / weighting, extra)

        seconds = interleaved({name: arm(name) for name in ARMS}, REPEATS, rotate=True, measure=lambda run: run())
    if any(value != value for values in seconds.values() for value in values):  # NaN: no train_runtime logged
        raise SystemExit(f"a run logged no train_runtime: {seconds}")
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    ratio = medians["projected"] / medians["balanced"]
    results = {"data": str(data_dir), "epochs": EPOCHS, "repeats": REPEATS, "seconds": seconds, "median": medians,
               "ratio": ratio, "machine": machine()}  # fmt: skip
    lines = [f"`multigroup train` on `{data_dir.name}`, {EPOCHS} epoch, batch {BATCH_SIZE}, train_runtime in s (median of "
             f"{REPEATS}, interleaved)", "", "| loss weighting | seconds | each run |", "|---|---|---|"]  # fmt: skip
    for name in ARMS:
        lines.append(f"| {name} | {medians[name]:.1f} | {', '.join(f'{s:.1f}' for s in seconds[name])} |")
    lines += ["", f"projected / balanced: {ratio:.3f}"]
    write_results(RESULTS / "projected" / f"train_time_{data_dir.name}", results, "\n".join(lines))


if __name__ == "__main__":
    main()
