"""The transformers versions a saved model runs under, 4.51.3 through 5.x: the one place where they differ.

This file is remote code, the first that `configuration_multigroup.py` imports: an older transformers gets one
clear message here, before any other import can fail. The multigroup package itself (training, CLI) needs 5.
"""

import json
import os
import re
from pathlib import Path

import transformers

MINIMUM_TRANSFORMERS = "4.51.3"
if tuple(int(n) for n in re.findall(r"\d+", transformers.__version__)[:3]) < (4, 51, 3):
    raise ImportError(
        f"This multigroup model needs transformers>={MINIMUM_TRANSFORMERS}, but transformers "
        f"{transformers.__version__} is installed. Upgrade it: pip install -U 'transformers>={MINIMUM_TRANSFORMERS}'"
    )

# transformers 5 renamed it `PreTrainedConfig` and keeps this name as an alias; a config with its own `__init__`
# (not a dataclass) works under both.
from transformers import PretrainedConfig  # noqa: E402

from .spec_multigroup import spelled_like_hub_id  # noqa: E402

try:  # transformers 5: initialisers that leave alone the weights already loaded from a checkpoint
    from transformers import initialization as init
except ImportError:  # transformers 4 calls `_init_weights` only on modules whose weights it did not load
    from torch.nn import init


def make_portable(folder: str | os.PathLike) -> None:
    """Rewrite a saved folder's JSON files so that every supported transformers reads them and no local path leaks.

    transformers 5 saves a generic fast tokenizer as `TokenizersBackend`, a class transformers 4 lacks; both know it
    as `PreTrainedTokenizerFast`. `_name_or_path` (and a `base_model` that is not a Hub id) would publish the path
    of the machine the model was saved on.
    """
    tokenizer_file, config_file = Path(folder) / "tokenizer_config.json", Path(folder) / "config.json"
    if tokenizer_file.is_file():
        tokenizer = json.loads(tokenizer_file.read_text(encoding="utf-8"))
        if tokenizer.get("tokenizer_class") == "TokenizersBackend":
            tokenizer["tokenizer_class"] = "PreTrainedTokenizerFast"
            tokenizer_file.write_text(json.dumps(tokenizer, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if config_file.is_file():
        config = json.loads(config_file.read_text(encoding="utf-8"))
        config.pop("_name_or_path", None)
        if not is_hub_id(config.get("base_model")):
            config.pop("base_model", None)
        config_file.write_text(
            json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
        )


def is_hub_id(name) -> bool:
    """`org/name` or `name` as the Hub spells repo ids, and not a folder on this machine."""
    return spelled_like_hub_id(name) and not os.path.exists(name)


__all__ = ["MINIMUM_TRANSFORMERS", "PretrainedConfig", "init", "is_hub_id", "make_portable"]
