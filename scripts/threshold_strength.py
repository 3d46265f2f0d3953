"""How strongly the default threshold rule pulls a label toward its group, chosen on validation data only.

    python scripts/threshold_strength.py --data-dir ../shared/data/semeval16_absa_rest_en \
        --data-dir ../shared/data/semeval16_absa_laptops_en

Reads the joint models' validation logits that `scripts/bench_quality.py` cached, splits each validation set in
two halves (by row, 20 random splits), picks thresholds on one half with each strength and scores the other half,
and prints each strength's mean held-out micro-F1 and macro-F1 over every multilabel group, split and model, and
its smaller margin to the targets (micro-F1 >= per-group's - 0.005, macro-F1 >= per-label's - 0.005). The test
files are never read. `multigroup.thresholds.STRENGTH` is the strength with the largest such margin.
"""

import argparse
from pathlib import Path

from bench_quality import CACHE_DIR, cache_folder, gold, spec_from_data

STRENGTHS = [0, 2, 5, 10, 20, 40, 80, 1e9]  # 0: per-label thresholds; 1e9: one per group
SPLITS = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", action="append", required=True)
    parser.add_argument("--cache-dir", default=CACHE_DIR)
    parser.add_argument("--batch-size", type=int, default=8, help="which cached runs to read")
    args = parser.parse_args()

    import numpy as np

    from multigroup import MultiGroupConfig
    from multigroup.data import load_table
    from multigroup.metrics import compute_metrics
    from multigroup.thresholds import choose_thresholds

    scores = {strength: [] for strength in STRENGTHS}
    for data_dir in map(Path, args.data_dir):
        groups = spec_from_data(load_table(data_dir / "train.jsonl"))
        labels, _ = gold(MultiGroupConfig(groups=groups), load_table(data_dir / "validation.jsonl"))
        multilabel = [g["name"] for g in groups if g["type"] == "multilabel"]
        for path in sorted(cache_folder(args.cache_dir, data_dir, args.batch_size).glob("joint-*.npz")):
            logits = np.load(path)["validation"]
            rng = np.random.default_rng(0)
            for _ in range(SPLITS):
                half = rng.permutation(len(labels)) < len(labels) // 2
                for strength in STRENGTHS:
                    config = MultiGroupConfig(groups=groups)
                    choose_thresholds(config, logits[half], labels[half], rule="shrunk", strength=strength)
                    metrics = compute_metrics(config, logits[~half], labels[~half])
                    scores[strength].append(
                        [np.mean([metrics[f"{name}_f1_{kind}"] for name in multilabel]) for kind in ("micro", "macro")]
                    )
    # The targets: micro-F1 within 0.005 of one threshold per group, macro-F1 within 0.005 of per-label ones.
    means = {strength: np.mean(values, axis=0) for strength, values in scores.items()}
    per_group_micro, per_label_macro = means[STRENGTHS[-1]][0], means[STRENGTHS[0]][1]
    print("strength   held-out micro-F1   held-out macro-F1   smaller margin to the targets")
    for strength, (micro, macro) in means.items():
        margin = min(micro - per_group_micro, macro - per_label_macro) + 0.005
        print(f"{strength:>8g}   {micro:17.4f}   {macro:17.4f}   {margin:+.4f}")


if __name__ == "__main__":
    main()
