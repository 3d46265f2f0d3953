"""ONNX export into a folder that stands alone, and the ONNX Runtime classifier that answers like the pipeline.

Example (needs a saved model folder; `multigroup export onnx` does the first step):

```python
from multigroup.onnx import OnnxMultiGroupClassifier, export_onnx

export_onnx("my-model", "my-model-onnx", quantize=True, check_file="validation.jsonl")
clf = OnnxMultiGroupClassifier("my-model-onnx")
clf(["Great food, slow service."], top_k=None)  # the same answer as the pipeline's
```
"""

import json
import re
import shutil
from pathlib import Path

import torch

from .hub_code.modeling_multigroup import code_files
from .hub_code.onnx_multigroup import ONNX_FILE, QUANTIZED_FILE, OnnxMultiGroupClassifier
from .hub_code.versions_multigroup import make_portable

# What the ONNX folder needs beside model.onnx, config and tokenizer: the runner and the config's code (its decode).
STANDALONE_FILES = tuple(sorted({*code_files("onnx_multigroup.py"), *code_files("configuration_multigroup.py")}))


class _LogitsOnly(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits


# int8 recipes, fastest first. Each quantizes the encoder's MatMul weights per output channel (activations per
# batch, at run time) and keeps the embeddings' lookup in fp32: quantizing the embeddings or every weight with one
# scale cost up to 0.025 F1 on SemEval. Between the two ends, `matmul-ffn-out-fp32-layer-N` keeps one layer's
# feed-forward output projection in fp32 (their inputs carry the activation outliers, one layer's often most);
# the last keeps every layer's, the slowest. scripts/bench_onnx.py measures them.
RECIPES = ("matmul", "matmul-ffn-out-fp32")
LAYER_RECIPE = "matmul-ffn-out-fp32-layer-{}"
MAX_F1_DROP = 0.005  # the int8 graph's budget on a check file, per group, micro and macro F1
INT8_REPORT = "int8.json"


def export_onnx(
    model_dir: str | Path,
    output_dir: str | Path,
    opset: int = 17,
    quantize: bool = False,
    check_file: str | Path | None = None,
    text_column: str = "text",
) -> Path:
    """Write `model.onnx` (dynamic batch and sequence length, one `logits` output), the config, the tokenizer and
    the code to run them without multigroup (`onnx_multigroup.py` and the config's code files).

    With `quantize=True`, also `model_int8.onnx` (int8 weights, `RECIPES[0]`). With a labelled `check_file` as
    well, each recipe is tried fastest first and the first whose every group keeps micro and macro F1 within
    `MAX_F1_DROP` of the fp32 graph on that file is kept; if none does, the one that drops least is kept and the
    report says so. The measurement goes to `int8.json` in `output_dir` (see `quantize_onnx`).
    """
    from transformers import AutoTokenizer

    from .auto import AutoModelForMultiGroupClassification

    model = AutoModelForMultiGroupClassification.from_pretrained(model_dir, attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    output_dir = Path(output_dir)  # made once the model loaded: a wrong model_dir leaves no empty folder
    output_dir.mkdir(parents=True, exist_ok=True)
    sample = tokenizer(
        ["A short text.", "A somewhat longer second text for the export."], padding=True, return_tensors="pt"
    )
    names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in sample]
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    # The wrapper in eval mode: the exporter puts every module back in the wrapper's mode when it is done.
    with torch.inference_mode():
        torch.onnx.export(
            _LogitsOnly(model).eval(), tuple(sample[name] for name in names), str(output_dir / ONNX_FILE),
            input_names=names, output_names=["logits"], dynamic_axes={**axes, "logits": {0: "batch"}},
            opset_version=opset, dynamo=False, external_data=False,
        )  # fmt: skip
    model.config.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    if (Path(model_dir) / "metrics.json").is_file():  # which files chose the thresholds: evaluate marks them
        shutil.copyfile(Path(model_dir) / "metrics.json", output_dir / "metrics.json")
    for name in STANDALONE_FILES:
        shutil.copyfile(Path(__file__).parent / "hub_code" / name, output_dir / name)
    config_file = output_dir / "config.json"  # only the config's code is here: point at nothing else
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["auto_map"] = {"AutoConfig": "configuration_multigroup.MultiGroupConfig"}
    config.pop("custom_pipelines", None)
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    make_portable(output_dir)
    if quantize:
        quantize_onnx(output_dir, check_file, text_column)
    elif check_file is not None:
        raise ValueError("check_file measures the int8 graph: pass quantize=True with it.")
    return output_dir / ONNX_FILE


def quantize_onnx(folder: str | Path, check_file: str | Path | None = None, text_column: str = "text") -> dict:
    """Write `model_int8.onnx` beside `model.onnx` and return what was measured (also written to `int8.json`):
    `{"recipe", "file", "budget", "within_budget", "groups": {group: {"f1_micro": [fp32, int8], ...}}, "tried":
    {recipe: worst drop}}`.
    Without `check_file`, the first recipe and no measurement (`file`, `within_budget` None)."""
    folder = Path(folder)
    tried = {}
    if check_file is None:
        recipe = RECIPES[0]
        _quantize(folder, recipe)
    else:
        scored = _labelled(folder, check_file, text_column)
        layers = sorted({int(layer) for name in _ffn_outputs(folder) for layer in _LAYER.findall(name)})
        for recipe in (RECIPES[0], *(LAYER_RECIPE.format(layer) for layer in layers), RECIPES[1]):
            _quantize(folder, recipe)
            tried[recipe] = _f1_drops(folder, *scored)
            if _worst(tried[recipe]) <= MAX_F1_DROP:
                break
        recipe = min(tried, key=lambda name: _worst(tried[name]))  # the first within budget, else the least drop
        if recipe != list(tried)[-1]:
            _quantize(folder, recipe)  # a later recipe's graph was the last written: write the kept one back
    report = {
        "recipe": recipe, "file": None if check_file is None else str(check_file), "budget": MAX_F1_DROP,
        "within_budget": None if check_file is None else _worst(tried[recipe]) <= MAX_F1_DROP,
        "groups": tried.get(recipe, {}), "tried": {name: _worst(drops) for name, drops in tried.items()},
    }  # fmt: skip
    (folder / INT8_REPORT).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def _quantize(folder: Path, recipe: str) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = folder / ONNX_FILE
    keep = []
    if recipe == RECIPES[1]:
        keep = _ffn_outputs(folder)
    elif recipe.startswith(LAYER_RECIPE.format("")):
        layer = recipe.removeprefix(LAYER_RECIPE.format(""))
        keep = [name for name in _ffn_outputs(folder) if _LAYER.findall(name) == [layer]]
    elif recipe != RECIPES[0]:
        choices = f"{RECIPES[0]!r}, {LAYER_RECIPE.format('N')!r} or {RECIPES[1]!r}"
        raise ValueError(f"Unknown int8 recipe {recipe!r}: {choices}.")
    quantize_dynamic(
        str(source), str(folder / QUANTIZED_FILE), weight_type=QuantType.QInt8, per_channel=True,
        op_types_to_quantize=["MatMul", "Gemm", "Attention"], nodes_to_exclude=keep,
    )  # fmt: skip


# The feed-forward output projection of each layer, as torch.onnx names it: BERT-like `layer.N/output/dense`,
# DistilBERT `ffn/lin2`, ELECTRA and DeBERTa as BERT; `layer.N/` names its layer.
_FFN_OUTPUT = re.compile(r"/output/dense/|/ffn/lin2/")
_LAYER = re.compile(r"layer\.(\d+)/")


def _ffn_outputs(folder: Path) -> list[str]:
    """The MatMul nodes of `model.onnx` that are feed-forward output projections."""
    import onnx

    return [node.name for node in onnx.load(str(folder / ONNX_FILE)).graph.node if node.op_type == "MatMul"
            and _FFN_OUTPUT.search(node.name) and "attention" not in node.name]  # fmt: skip


def _labelled(folder: Path, file, text_column: str):
    from .data import labelled_file

    runner = OnnxMultiGroupClassifier(folder)
    texts, labels, missed = labelled_file(file, runner.tokenizer, runner.config, text_column)
    return runner.config, runner.logits(texts), texts, labels, missed


def _f1_drops(folder: Path, config, fp32_logits, texts, labels, missed) -> dict:
    from .metrics import compute_metrics

    int8_logits = OnnxMultiGroupClassifier(folder, quantized=True).logits(texts)
    scores = [compute_metrics(config, logits, labels, missed=missed) for logits in (fp32_logits, int8_logits)]
    return {
        group["name"]: {f"f1_{kind}": [round(score[f"{group['name']}_f1_{kind}"], 4) for score in scores]
                        for kind in ("micro", "macro")}
        for group in config.groups if group["type"] != "regression"
    }  # fmt: skip


def _worst(drops: dict) -> float:
    return round(max(fp32 - int8 for group in drops.values() for fp32, int8 in group.values()), 4)


__all__ = ["ONNX_FILE", "QUANTIZED_FILE", "RECIPES", "OnnxMultiGroupClassifier", "export_onnx", "quantize_onnx"]
