"""Run an exported multigroup model with ONNX Runtime: `OnnxMultiGroupClassifier(folder)(texts)` answers like the
pipeline, through the model's own `config.decode`.

`multigroup export onnx` writes this file into the ONNX folder with the config's code files, so the folder is used
without multigroup (numpy, onnxruntime and transformers 4.51.3+ only):

```python
import sys
sys.path.insert(0, "my-model-onnx")
from onnx_multigroup import OnnxMultiGroupClassifier

clf = OnnxMultiGroupClassifier("my-model-onnx")
clf(["Great food, slow service."], top_k=None)
```
"""

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

try:  # inside the multigroup package
    from .batching_multigroup import WINDOW_BATCHES, check_texts, length_batches, windows
except ImportError:  # from an ONNX folder put on sys.path, where this file is a top-level module
    from batching_multigroup import WINDOW_BATCHES, check_texts, length_batches, windows

ONNX_FILE, QUANTIZED_FILE = "model.onnx", "model_int8.onnx"


class OnnxMultiGroupClassifier:
    """Run an exported model with ONNX Runtime; `clf(texts, ...)` answers like the pipeline.

    Args:
        path: a folder written by `export_onnx` (or `multigroup export onnx`).
        quantized: use `model_int8.onnx` instead of `model.onnx`.
        threads: ONNX Runtime intra-op threads (default: its own choice).
    """

    window_batches = WINDOW_BATCHES  # a stream's texts read and sorted by length together, in batches

    def __init__(self, path: str | Path, quantized: bool = False, threads: int | None = None):
        import onnxruntime
        from transformers import AutoConfig, AutoTokenizer

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
        # The folder's own config code (configuration_multigroup.py and the files it imports) holds the decode.
        if (path / "configuration_multigroup.py").is_file():
            self.config = AutoConfig.from_pretrained(path, trust_remote_code=True)
        else:  # exported before multigroup 0.3, without that code: read by the package's (this runner's there)
            from .configuration_multigroup import MultiGroupConfig

            self.config = MultiGroupConfig.from_pretrained(path)
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
        self.max_length = min(self.tokenizer.model_max_length, self.config.max_tokens)

    def logits(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """`(len(texts), num_columns)` logits, texts batched by length, in input order."""
        logits = np.zeros((len(texts), self.config.num_columns), dtype=np.float32)
        for indices in length_batches(texts, batch_size):
            batch = self.tokenizer(
                [texts[i] for i in indices], padding=True, truncation=True, max_length=self.max_length,
                return_tensors="np",
            )  # fmt: skip
            logits[indices] = self.run(batch)
        return logits

    def run(self, batch) -> np.ndarray:
        """The logits of one tokenized, padded batch (numpy arrays, as the tokenizer returns them)."""
        return self.session.run(["logits"], {name: batch[name].astype(np.int64) for name in self.input_names})[0]

    def __call__(
        self, inputs: str | Iterable[str], batch_size: int = 32, top_k: int | None = 1, threshold=None, groups=None
    ) -> dict | list[dict] | Iterator[dict]:
        """Like the pipeline: a string gives one prediction, a list or tuple a list of them, any other iterable
        (a generator, a file's lines) an iterator over them in input order, read `WINDOW_BATCHES` batches at a time
        so that memory stays flat. Bad options raise here, before any text is read."""
        if isinstance(inputs, (bytes, dict)) or not isinstance(inputs, (str, Iterable)):
            raise TypeError(f"Give a string or a list of strings, got {type(inputs).__name__} {inputs!r}.")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}.")
        options = {"top_k": top_k, "threshold": threshold, "groups": groups}
        self.config.check_options(**options)
        if isinstance(inputs, (str, list, tuple)):
            texts = check_texts([inputs] if isinstance(inputs, str) else list(inputs))
            rows = self.config.decode(self.logits(texts, batch_size), **options) if texts else []
            return rows[0] if isinstance(inputs, str) else rows
        return self._stream(iter(inputs), batch_size, options)

    def _stream(self, stream: Iterator, batch_size: int, options: dict) -> Iterator[dict]:
        for texts in windows(stream, batch_size * self.window_batches):
            yield from self.config.decode(self.logits(texts, batch_size), **options)
