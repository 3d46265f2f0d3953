"""ONNX export, and an ONNX Runtime classifier that answers exactly like the pipeline (the same `config.decode`).

Example (needs a saved model folder; `multigroup export onnx` does the first step):

```python
from multigroup.onnx import OnnxMultiGroupClassifier, export_onnx

export_onnx("my-model", "my-model-onnx", quantize=True)
clf = OnnxMultiGroupClassifier("my-model-onnx")
clf(["Great food, slow service."], top_k=None)  # the same answer as the pipeline's
```
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .configuration_multigroup import MultiGroupConfig
from .pipeline_multigroup import _check_texts

ONNX_FILE, QUANTIZED_FILE = "model.onnx", "model_int8.onnx"


class _LogitsOnly(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits


def export_onnx(model_dir: str | Path, output_dir: str | Path, opset: int = 17, quantize: bool = False) -> Path:
    """Write `model.onnx` (dynamic batch and sequence length, one `logits` output), the config and the tokenizer.

    With `quantize=True`, also `model_int8.onnx` (dynamic int8 quantization of the weights).
    """
    from transformers import AutoTokenizer

    from .auto import AutoModelForMultiGroupClassification

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model = AutoModelForMultiGroupClassification.from_pretrained(model_dir, attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
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
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(output_dir / ONNX_FILE), str(output_dir / QUANTIZED_FILE), weight_type=QuantType.QInt8)
    return output_dir / ONNX_FILE


class OnnxMultiGroupClassifier:
    """Run an exported model with ONNX Runtime; `clf(texts, ...)` answers like the pipeline.

    Args:
        path: a folder written by `export_onnx` (or `multigroup export onnx`).
        quantized: use `model_int8.onnx` instead of `model.onnx`.
        threads: ONNX Runtime intra-op threads (default: its own choice).
    """

    def __init__(self, path: str | Path, quantized: bool = False, threads: int | None = None):
        import onnxruntime
        from transformers import AutoTokenizer

        path = Path(path)
        options = onnxruntime.SessionOptions()
        # No busy-waiting between runs: spinning threads would take the cores from whatever runs next.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
        model_file = path / (QUANTIZED_FILE if quantized else ONNX_FILE)
        if not model_file.is_file():
            raise FileNotFoundError(f"{model_file} not found: export it with `multigroup export onnx` first.")
        self.session = onnxruntime.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        self.input_names = [node.name for node in self.session.get_inputs()]
        self.config = MultiGroupConfig.from_pretrained(path)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.max_length = min(self.tokenizer.model_max_length, self.config.max_tokens)

    def logits(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """`(len(texts), num_columns)` logits, texts batched by length, in input order."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        logits = np.zeros((len(texts), self.config.num_columns), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            indices = order[start : start + batch_size]
            batch = self.tokenizer(
                [texts[i] for i in indices], padding=True, truncation=True, max_length=self.max_length,
                return_tensors="np",
            )  # fmt: skip
            feeds = {name: batch[name].astype(np.int64) for name in self.input_names}
            logits[indices] = self.session.run(["logits"], feeds)[0]
        return logits

    def __call__(
        self, inputs: str | list[str], batch_size: int = 32, top_k: int | None = 1, threshold=None, groups=None
    ):
        texts = [inputs] if isinstance(inputs, str) else _check_texts(inputs)
        if not texts:
            return []
        rows = self.config.decode(self.logits(texts, batch_size), top_k=top_k, threshold=threshold, groups=groups)
        return rows[0] if isinstance(inputs, str) else rows
