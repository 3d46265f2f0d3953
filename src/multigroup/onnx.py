"""ONNX export into a folder that stands alone, and the ONNX Runtime classifier that answers like the pipeline.

Example (needs a saved model folder; `multigroup export onnx` does the first step):

```python
from multigroup.onnx import OnnxMultiGroupClassifier, export_onnx

export_onnx("my-model", "my-model-onnx", quantize=True)
clf = OnnxMultiGroupClassifier("my-model-onnx")
clf(["Great food, slow service."], top_k=None)  # the same answer as the pipeline's
```
"""

import json
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


def export_onnx(model_dir: str | Path, output_dir: str | Path, opset: int = 17, quantize: bool = False) -> Path:
    """Write `model.onnx` (dynamic batch and sequence length, one `logits` output), the config, the tokenizer and
    the code to run them without multigroup (`onnx_multigroup.py` and the config's code files).

    With `quantize=True`, also `model_int8.onnx` (dynamic int8 quantization of the weights).
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
    with torch.inference_mode():
        torch.onnx.export(
            _LogitsOnly(model), tuple(sample[name] for name in names), str(output_dir / ONNX_FILE),
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
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(output_dir / ONNX_FILE), str(output_dir / QUANTIZED_FILE), weight_type=QuantType.QInt8)
    return output_dir / ONNX_FILE


__all__ = ["ONNX_FILE", "QUANTIZED_FILE", "OnnxMultiGroupClassifier", "export_onnx"]
