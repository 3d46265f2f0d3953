"""multigroup's per-group metrics as an `evaluate` module: `evaluate.load(multigroup.EVALUATE_MODULE)`.

Built-in `evaluate` metrics are Hub scripts; this one loads from a local path, offline. It computes exactly what
`multigroup.metrics.compute_metrics` computes (the same function).
"""

import datasets
import evaluate
import numpy as np

from multigroup import MultiGroupConfig
from multigroup.metrics import compute_metrics

_DESCRIPTION = """Per-group metrics of a multi-group model: F1 micro/macro per classification group, accuracy
(multiclass), subset accuracy (multilabel), MAE/RMSE (regression), overall F1 over all classification columns,
the mean of the groups' macro F1, and each group's loss. Rows missing a group (nan labels) are left out of it."""

_KWARGS = """
Args:
    predictions: logits, one row of `num_columns` floats per example (columns in group order).
    references: label rows from `config.encode_labels` (nan marks a missing group).
    config: a `MultiGroupConfig` (or `groups`: its list of group dicts).
    threshold: optional override of the multilabel thresholds.
Returns:
    a dict of floats keyed like `{group}_f1_macro`, `f1_micro`, `mean_f1_macro`, `loss_{group}`.
Example:
    metric = evaluate.load(multigroup.EVALUATE_MODULE)
    metric.compute(predictions=logits, references=labels, config=model.config)["mean_f1_macro"]
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class MultigroupMetrics(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float32")),
                    "references": datasets.Sequence(datasets.Value("float32")),
                }
            ),
        )

    def _compute(self, predictions, references, config=None, groups=None, threshold=None):
        if config is None:
            if groups is None:
                raise ValueError(
                    "Pass config=model.config (or groups=[...]) to compute(): the metrics need the groups."
                )
            config = MultiGroupConfig(groups=groups)
        return compute_metrics(config, np.asarray(predictions), np.asarray(references), threshold)
