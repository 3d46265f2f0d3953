"""From tables of texts and labels to tokenized datasets with one flat `labels` column: `readers` (files row by
row, with line numbers), `tables` (a file as a `datasets.Dataset`, larger than memory), `groups` (the groups of a
table, its label matrix, `prepare_dataset`).

Examples:

```python
>>> from datasets import Dataset
>>> from multigroup.data import infer_groups
>>> rows = Dataset.from_list([
...     {"text": "Slow queue", "score": "S2", "causes": ["wait"]},
...     {"text": "Kind staff", "score": "S5", "causes": ["staff", "wait"]},
... ])
>>> for group in infer_groups(rows, multiclass=["score"], multilabel=["causes"]):
...     print(group)
{'name': 'score', 'type': 'multiclass', 'labels': ['S2', 'S5']}
{'name': 'causes', 'type': 'multilabel', 'labels': ['staff', 'wait']}

```
"""

from .groups import infer_groups, label_matrix, labelled_file, prepare_dataset
from .readers import SUPPORTED_SUFFIXES, iter_csv, iter_jsonl, iter_records, locate
from .tables import CSV_LISTS, load_table

__all__ = [
    "CSV_LISTS",
    "SUPPORTED_SUFFIXES",
    "infer_groups",
    "iter_csv",
    "iter_jsonl",
    "iter_records",
    "label_matrix",
    "labelled_file",
    "load_table",
    "locate",
    "prepare_dataset",
]
