"""multigroup: one transformer encoder, several label groups (multiclass, multilabel, regression)."""

from pathlib import Path

from .auto import AutoModelForMultiGroupClassification
from .configuration_multigroup import MISSING, MultiGroupConfig
from .modeling_multigroup import (
    BertForMultiGroupClassification,
    CamembertForMultiGroupClassification,
    MultiGroupClassifierOutput,
    RobertaForMultiGroupClassification,
    XLMRobertaForMultiGroupClassification,
    multi_group_loss,
)
from .pipeline_multigroup import PIPELINE_TASK, MultiGroupClassificationPipeline

__version__ = "0.2.0"
# `evaluate.load(EVALUATE_MODULE)` loads the per-group metrics offline.
EVALUATE_MODULE = str(Path(__file__).parent / "evaluate_module" / "multigroup_metrics.py")

__all__ = [
    "EVALUATE_MODULE",
    "MISSING",
    "PIPELINE_TASK",
    "AutoModelForMultiGroupClassification",
    "BertForMultiGroupClassification",
    "CamembertForMultiGroupClassification",
    "MultiGroupClassificationPipeline",
    "MultiGroupClassifierOutput",
    "MultiGroupConfig",
    "RobertaForMultiGroupClassification",
    "XLMRobertaForMultiGroupClassification",
    "multi_group_loss",
]
