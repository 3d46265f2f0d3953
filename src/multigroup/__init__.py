"""multigroup: one transformer encoder, several label groups (multiclass, multilabel, regression).

`import multigroup` is light (no torch, no transformers), so that `multigroup --help` answers at once. The public
names below are imported on first use (`from multigroup import MultiGroupConfig`, `multigroup.MultiGroupConfig`),
and that first use also registers multigroup with transformers' Auto classes (`multigroup.auto` says what that
gives).
"""

import importlib
import importlib.abc
import importlib.util
import sys
from pathlib import Path

__version__ = "0.3.0"
# `evaluate.load(EVALUATE_MODULE)` loads the per-group metrics offline.
EVALUATE_MODULE = str(Path(__file__).parent / "evaluate_module" / "multigroup_metrics.py")

# Each public name and the module that defines it, imported when the name is first used (PEP 562).
_LAZY = {
    "MISSING": "hub_code.spec_multigroup",
    "PIPELINE_TASK": "hub_code.pipeline_multigroup",
    "AutoModelForMultiGroupClassification": "auto",
    "BertForMultiGroupClassification": "hub_code.modeling_multigroup",
    "CamembertForMultiGroupClassification": "hub_code.modeling_multigroup",
    "MultiGroupClassificationPipeline": "hub_code.pipeline_multigroup",
    "MultiGroupClassifierOutput": "hub_code.modeling_multigroup",
    "MultiGroupConfig": "hub_code.configuration_multigroup",
    "RobertaForMultiGroupClassification": "hub_code.modeling_multigroup",
    "XLMRobertaForMultiGroupClassification": "hub_code.modeling_multigroup",
    "multi_group_loss": "hub_code.modeling_multigroup",
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


# multigroup <= 0.3 kept the files that travel beside the library (`multigroup.modeling_multigroup`, ...): those
# names still import, as the very module of `multigroup.hub_code` (one class, one cache, one registration).
_MOVED = {
    f"{__name__}.{name}": f"{__name__}.hub_code.{name}"
    for name in ("configuration_multigroup", "decoding_multigroup", "handler", "head_multigroup",
                 "modeling_multigroup", "onnx_multigroup", "pipeline_multigroup", "spec_multigroup",
                 "versions_multigroup")
}  # fmt: skip


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        return importlib.util.spec_from_loader(fullname, self) if fullname in _MOVED else None

    def create_module(self, spec):
        return importlib.import_module(_MOVED[spec.name])

    def exec_module(self, module):
        pass


if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModules())
