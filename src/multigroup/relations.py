"""Relations between groups found in training data (`infer_relations`), and the contradictions of predictions against
them (`contradictions`); the config stores the relations (`MultiGroupConfig(relations=...)`), the one decode keeps
them.

Two kinds are found, each only where it holds on every training row that has the groups involved:
- a composed group: every label of a multilabel group joins one label of each of other multilabel groups with a
  separator (SemEval laptops: `aspects` is `entities#attributes`), and on every row its labels' parts are exactly
  the other groups' labels (with at least `min_support` rows that carry all of them and a composed label);
- a label that implies a label of another group (`emotions:joy` implies `sentiment:positive`), for labels seen on
  at least `min_support` rows: a rarer label would imply whatever it happened to be seen with.

Examples:

```python
>>> from datasets import Dataset
>>> from multigroup.relations import infer_relations
>>> groups = [{"name": "entities", "type": "multilabel", "labels": ["BATTERY", "LAPTOP"]},
...           {"name": "aspects", "type": "multilabel", "labels": ["BATTERY#LIFE", "LAPTOP#PRICE"]},
...           {"name": "attributes", "type": "multilabel", "labels": ["LIFE", "PRICE"]}]
>>> rows = Dataset.from_list([{"entities": ["BATTERY"], "attributes": ["LIFE"], "aspects": ["BATTERY#LIFE"]},
...                           {"entities": ["LAPTOP"], "attributes": ["PRICE"], "aspects": ["LAPTOP#PRICE"]},
...                           {"entities": [], "attributes": [], "aspects": []}])
>>> infer_relations(rows, groups, min_support=2)  # (20 by default: two rows prove little)
[{'compose': 'aspects', 'of': ['entities', 'attributes'], 'separator': '#'}]

```
"""

from collections import Counter

import numpy as np

SEPARATORS = ("#", "/", ":", "|", ".", "-", "_")
MIN_SUPPORT = 20


def _label_sets(dataset, groups: list[dict], batch_size: int = 1000):
    """Per row, `{group: set of labels}` (a multiclass group's one label; None where the row lacks the group), of
    the groups' own labels only: what the model is trained on (a label the groups lack, dropped with
    `ignore_unknown_labels`, says nothing; a multiclass group's unknown class is no label)."""
    known = {group["name"]: set(group["labels"]) for group in groups if group["type"] != "regression"}
    present = [name for name in known if name in dataset.column_names]  # a column left out: missing on every row
    for batch in dataset.select_columns(present).iter(batch_size=batch_size) if present else ():
        for i in range(len(batch[present[0]])):
            row = dict.fromkeys(known)
            for name in present:
                value = batch[name][i]
                if isinstance(value, str):
                    row[name] = {value} if value in known[name] else None
                elif value is not None:
                    row[name] = set(value) & known[name]
            yield row


def _composition(group: dict, others: list[dict], separator: str) -> list[str] | None:
    """The groups whose labels `group`'s labels join with `separator`, position by position, or None."""
    pieces = [label.split(separator) for label in group["labels"]]
    width = len(pieces[0])
    if width < 2 or any(len(p) != width for p in pieces):
        return None
    parts = []
    for i in range(width):
        found = [o["name"] for o in others if {p[i] for p in pieces} <= set(o["labels"]) and o["name"] not in parts]
        if not found:
            return None
        parts.append(found[0])
    return parts


def infer_relations(dataset, groups: list[dict], min_support: int = MIN_SUPPORT) -> list[dict]:
    """The relations that hold on every row of `dataset` (a `datasets.Dataset` with a column per group), in the
    form `MultiGroupConfig(relations=...)` takes."""
    multilabel = [group for group in groups if group["type"] == "multilabel"]
    candidates = []
    for group in multilabel:
        for separator in SEPARATORS:
            parts = _composition(group, [o for o in multilabel if o is not group], separator)
            if parts:
                candidates.append({"compose": group["name"], "of": parts, "separator": separator})
                break
    # One pass over the rows, a batch at a time (a table larger than memory works): counts only.
    support, broken = Counter(), set()  # per candidate: rows that carry it; candidates a row contradicts
    carried, together = Counter(), Counter()  # rows with a label (and the target group); with both labels
    for row in _label_sets(dataset, groups) if multilabel else ():
        for c, relation in enumerate(candidates):
            names = [relation["compose"], *relation["of"]]
            if c in broken or any(row[name] is None for name in names):
                continue
            support[c] += bool(row[names[0]])
            pieces = [label.split(relation["separator"]) for label in row[names[0]]]
            if any({piece[i] for piece in pieces} != row[part] for i, part in enumerate(relation["of"])):
                broken.add(c)
        for source in multilabel:
            for label in row[source["name"]] or ():
                for target, labels in row.items():
                    if target != source["name"] and labels is not None:
                        carried[source["name"], label, target] += 1
                        together.update((source["name"], label, target, other) for other in labels)
    relations = [r for c, r in enumerate(candidates) if c not in broken and support[c] >= min_support]
    related = [{r["compose"], *r["of"]} for r in relations]
    implied = {}
    for (source, label, target, other), count in together.items():
        if any({source, target} <= names for names in related) or count < min_support:
            continue
        if count == carried[source, label, target]:
            implied.setdefault(f"{source}:{label}", []).append(f"{target}:{other}")
    order = {group["name"]: i for i, group in enumerate(groups)}
    for key in sorted(implied, key=lambda k: (order[k.split(":")[0]], k)):
        relations.append({"if": key, "then": sorted(implied[key], key=lambda k: (order[k.split(":")[0]], k))})
    return relations


def decided_columns(config, predictions: dict[str, dict]) -> np.ndarray:
    """`config.group_predictions(...)`'s decisions as one `(n, num_columns)` bool array: each multilabel label
    selected, each multiclass group's chosen class (a regression column: False)."""
    columns = []
    for group in config.groups:
        decided = predictions[group["name"]]
        if group["type"] == "regression":
            columns.append(np.zeros((len(decided["values"]), 1), dtype=bool))
        elif group["type"] == "multiclass":
            columns.append(np.eye(len(group["labels"]), dtype=bool)[np.asarray(decided["index"])])
        else:
            columns.append(np.asarray(decided["selected"], dtype=bool))
    return np.concatenate(columns, 1)


def contradictions(config, predictions: dict[str, dict]) -> np.ndarray:
    """Per row, whether `config.group_predictions(...)`'s decisions contradict the config's relations: a label
    without one it implies, or a part of a composed group without any of its composed labels."""
    from .hub_code.relations_multigroup import relation_columns

    implies, requires = relation_columns(config.relations or [], config.groups, config.group_slices)
    on = decided_columns(config, predictions)
    bad = np.zeros(len(on), dtype=bool)
    for child, parents in implies:
        bad |= on[:, child] & ~on[:, parents].all(1)
    for parent, children in requires:
        bad |= on[:, parent] & ~on[:, children].any(1)
    return bad
