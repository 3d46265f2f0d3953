"""Where int8 loses F1, and what keeps it: test-F1 change and logit change against the fp32 ONNX graph for each probe.

    multigroup export onnx --model MODEL --output MODEL-onnx            # the fp32 graph, as a user exports it
    python scripts/int8_probe.py --onnx MODEL-onnx --data-dir ../shared/data/semeval16_absa_rest_en

Probes, each written beside model.onnx as probe.onnx and scored on the test split in batches of 32 sorted by length
(gold labels the model lacks counted as misses, the model's own thresholds and decode):
  dynamic           `export onnx --quantize`'s first recipe (int8 weights per channel, activations per batch)
  one-at-a-time     the same, but only one matrix product quantized, for each of them: where the error comes from
  smoothquant-A     SmoothQuant (Xiao et al., 2023) on the graph: each matrix product's input divided per channel by
                    s = max|x|^A / max|w|^(1-A) (activation maxima over the validation texts), its weights multiplied
                    by s, then the dynamic recipe
  weight-only       8-bit weights in blocks of 32 (ONNX Runtime's MatMulNBits, needs `pip install onnx_ir`),
                    activations in fp32
Prints and writes scripts/results/int8_probe_<data>.{json,md}: worst F1 drop over the groups (micro and macro), mean
and max absolute logit change. Not a speed benchmark (`scripts/bench_onnx.py` times the recipes).
"""

import argparse
from collections import defaultdict
from pathlib import Path

from _harness import RESULTS, write_results

PROBE = "probe.onnx"


def matmuls(model) -> list:
    """The graph's matrix products with a constant weight: what dynamic quantization turns into int8."""
    weights = {init.name for init in model.graph.initializer}
    return [node for node in model.graph.node if node.op_type in ("MatMul", "Gemm") and node.input[1] in weights]


def dynamic(folder: Path, exclude=()) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(folder / "source.onnx"), str(folder / PROBE), weight_type=QuantType.QInt8, per_channel=True,
        op_types_to_quantize=["MatMul", "Gemm"], nodes_to_exclude=list(exclude),
    )  # fmt: skip


def smoothed(folder: Path, texts: list[str], runner, alpha: float) -> None:
    """model.onnx with SmoothQuant's per-channel scales folded in, written to source.onnx (the same fp32 logits)."""
    import numpy as np
    import onnx
    import onnxruntime
    from onnx import helper, numpy_helper

    model = onnx.load(str(folder / "model.onnx"))
    inits = {init.name: init for init in model.graph.initializer}
    readers = defaultdict(list)  # activation -> the matrix products that read it
    for node in matmuls(model):
        if node.op_type == "MatMul" and node.input[0] not in inits:  # a Gemm may hold its weight transposed
            readers[node.input[0]].append(node)
    probe = onnx.load(str(folder / "model.onnx"))
    probe.graph.output.extend(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None) for name in readers)
    session = onnxruntime.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    names, top = [i.name for i in session.get_inputs()], {}
    for start in range(0, len(texts), 32):
        batch = runner.tokenizer(texts[start : start + 32], padding=True, truncation=True, return_tensors="np")
        outputs = session.run(list(readers), {name: batch[name] for name in names})
        real = batch["attention_mask"].astype(bool)
        for name, value in zip(readers, outputs):
            rows = value[real] if value.shape[:2] == real.shape else value.reshape(-1, value.shape[-1])
            top[name] = np.maximum(top.get(name, 0.0), np.abs(rows).max(0))
    new_nodes = []
    for name, nodes in readers.items():
        weights = [numpy_helper.to_array(inits[node.input[1]]) for node in nodes]
        weight_top = np.max([np.abs(w).max(1) for w in weights], axis=0)
        scale = (np.maximum(top[name], 1e-5) ** alpha / np.maximum(weight_top, 1e-5) ** (1 - alpha)).astype(np.float32)
        model.graph.initializer.append(numpy_helper.from_array(1 / scale, f"{name}_smooth"))
        new_nodes.append(helper.make_node("Mul", [name, f"{name}_smooth"], [f"{name}_smoothed"]))
        for node, weight in zip(nodes, weights):
            node.input[0] = f"{name}_smoothed"
            inits[node.input[1]].CopyFrom(numpy_helper.from_array(weight * scale[:, None], node.input[1]))
    produced_by = {output: node for node in model.graph.node for output in node.output}
    ordered = []  # each Mul right after the node that makes its input (or first, for a graph input)
    for node in [n for n in new_nodes if n.input[0] not in produced_by]:
        ordered.append(node)
    for node in list(model.graph.node):
        ordered.append(node)
        ordered += [n for n in new_nodes if n.input[0] in node.output]
    del model.graph.node[:]
    model.graph.node.extend(ordered)
    onnx.save(model, str(folder / "source.onnx"))


def weight_only(folder: Path) -> None:
    import onnx

    try:
        from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer
    except ImportError as error:
        raise SystemExit(
            f"weight-only needs `pip install onnx_ir` ({error}); or leave it out with --probes."
        ) from None
    quantizer = MatMulNBitsQuantizer(
        onnx.load(str(folder / "model.onnx")),
        algo_config=DefaultWeightOnlyQuantConfig(block_size=32, is_symmetric=True, accuracy_level=4, bits=8),
    )
    quantizer.process()
    quantizer.model.save_model_to_file(str(folder / PROBE), False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", required=True, help="an exported ONNX folder (model.onnx, config, tokenizer)")
    parser.add_argument("--data-dir", required=True, help="folder with validation.jsonl and test.jsonl")
    parser.add_argument(
        "--probes",
        nargs="+",
        default=["dynamic", "one-at-a-time", "smoothquant-0.25", "smoothquant-0.5", "smoothquant-0.8", "weight-only"],
    )
    args = parser.parse_args()

    import shutil
    import tempfile

    import numpy as np
    import onnx

    from multigroup.data import labelled_file, load_table
    from multigroup.metrics import compute_metrics
    from multigroup.onnx import OnnxMultiGroupClassifier

    data_dir = Path(args.data_dir)
    runner = OnnxMultiGroupClassifier(args.onnx, threads=2)
    texts, labels, missed = labelled_file(data_dir / "test.jsonl", runner.tokenizer, runner.config)
    fp32 = runner.logits(texts)
    base = compute_metrics(runner.config, fp32, labels, missed=missed)
    f1_keys = [f"{group['name']}_f1_{kind}" for group in runner.config.groups if group["type"] != "regression"
               for kind in ("micro", "macro")]  # fmt: skip

    with tempfile.TemporaryDirectory() as work:
        folder = Path(shutil.copytree(args.onnx, Path(work) / "onnx"))
        shutil.copyfile(folder / "model.onnx", folder / "source.onnx")

        def score() -> dict:
            shutil.copyfile(folder / PROBE, folder / "model_int8.onnx")
            logits = OnnxMultiGroupClassifier(folder, quantized=True, threads=2).logits(texts)
            metrics = compute_metrics(runner.config, logits, labels, missed=missed)
            change = np.abs(logits - fp32)
            return {"worst_f1_drop": round(max(base[key] - metrics[key] for key in f1_keys), 4),
                    "mean_logit_change": float(change.mean()), "max_logit_change": float(change.max())}  # fmt: skip

        results = {}
        for probe in args.probes:
            if probe == "dynamic":
                dynamic(folder)
                results[probe] = score()
            elif probe == "one-at-a-time":
                names = [node.name for node in matmuls(onnx.load(str(folder / "model.onnx")))]
                for name in names:
                    dynamic(folder, exclude=[other for other in names if other != name])
                    results[f"only {name}"] = score()
            elif probe.startswith("smoothquant-"):
                validation = [row["text"] for row in load_table(data_dir / "validation.jsonl")]
                smoothed(folder, validation, runner, float(probe.removeprefix("smoothquant-")))
                dynamic(folder)
                shutil.copyfile(folder / "model.onnx", folder / "source.onnx")
                results[probe] = score()
            elif probe == "weight-only":
                weight_only(folder)
                results[probe] = score()
            else:
                parser.error(
                    f"unknown probe {probe!r}: dynamic, one-at-a-time, smoothquant-A (A in 0..1), weight-only"
                )
    lines = [f"Test split of `{data_dir.name}`, against the fp32 graph of `{args.onnx}`.", "",
             "| probe | worst F1 drop | mean logit change | max logit change |", "|---|---|---|---|"]  # fmt: skip
    for probe, entry in results.items():
        lines.append(f"| {probe} | {entry['worst_f1_drop']:+.4f} | {entry['mean_logit_change']:.4f} "
                     f"| {entry['max_logit_change']:.3f} |")  # fmt: skip
    output = RESULTS / f"int8_probe_{data_dir.name}"
    write_results(str(output), {"onnx": args.onnx, "data": str(data_dir), "probes": results}, "\n".join(lines))


if __name__ == "__main__":
    main()
