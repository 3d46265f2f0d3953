"""The transformers versions a saved model runs under, 4.51.3 through 5.x: the one place where they differ.

This file is remote code, the first that `configuration_multigroup.py` imports: an older transformers gets one
clear message here, before any other import can fail. The multigroup package itself (training, CLI) needs 5.
"""

import re

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

try:  # transformers 5: initialisers that leave alone the weights already loaded from a checkpoint
    from transformers import initialization as init
except ImportError:  # transformers 4 calls `_init_weights` only on modules whose weights it did not load
    from torch.nn import init

__all__ = ["MINIMUM_TRANSFORMERS", "PretrainedConfig", "init"]
