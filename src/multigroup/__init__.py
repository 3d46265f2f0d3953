"""multigroup: one transformer encoder, several label groups (multiclass, multilabel, regression).

`import multigroup` is light (no torch, no transformers), so that `multigroup --help` answers at once. The public
names below are imported on first use (`from multigroup import MultiGroupConfig`, `multigroup.MultiGroupConfig`),
and that first use also registers multigroup with transformers' Auto classes (`multigroup.auto` says what that
gives).
"""

import importlib
from pathlib import Path

__version__ = "0.3.0"
# `evaluate.load(EVALUATE_MODULE)` loads the per-group metrics offline.
EVALUATE_MODULE = str(Path(__file__).parent / "evaluate_module" / "multigroup_metrics.py")

# Each public name and the module that defines it, imported when the name is first used (PEP 562).
_LAZY = {
    "MISSING": "spec_multigroup",
    "PIPELINE_TASK": "pipeline_multigroup",
    "AutoModelForMultiGroupClassification": "auto",
    "BertForMultiGroupClassification": "modeling_multigroup",
    "CamembertForMultiGroupClassification": "modeling_multigroup",
    "MultiGroupClassificationPipeline": "pipeline_multigroup",
    "MultiGroupClassifierOutput": "modeling_multigroup",
    "MultiGroupConfig": "configuration_multigroup",
    "RobertaForMultiGroupClassification": "modeling_multigroup",
    "XLMRobertaForMultiGroupClassification": "modeling_multigroup",
    "multi_group_loss": "modeling_multigroup",
}

__all__ = ["EVALUATE_MODULE", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    importlib.import_module(".auto", __name__)  # registers with transformers' Auto classes
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value  # later uses skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
