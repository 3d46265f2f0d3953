"""The files that travel: `save_pretrained` copies this folder's modules, flat, next to the weights of every saved
model (and `export_onnx` the ONNX runner with the config's files), so that a folder loads with
`trust_remote_code=True` where multigroup is not installed.

The folder's one rule: these files import only the standard library, torch, transformers (and what it depends on:
numpy, huggingface_hub, safetensors, tokenizers) and each other, by relative imports (`from .spec_multigroup
import ...`), which transformers copies with the file `auto_map` names. The library outside this folder may import
them; they never import it. `tests/test_hygiene.py` holds them to that, and to travelling: every file here is
copied by one of the two saves (`modeling_multigroup.CODE_FILES`, `multigroup.onnx.STANDALONE_FILES`).

This `__init__.py` is the package's own and does not travel (saved folders are flat); it imports nothing.
"""
