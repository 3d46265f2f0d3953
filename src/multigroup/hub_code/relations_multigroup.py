"""Relations between groups: what a config may say (`normalize_relations`), the relations as logits columns
(`relation_columns`), and the decode's rule that keeps them (`keep_relations`).

This file is remote code: `save_pretrained` copies it next to the weights, so it imports only the standard library,
torch and the other remote-code files.
"""

from typing import Any

import torch


def _label_ref(ref: Any, groups: dict[str, dict], where: str) -> tuple[str, str]:
    """`"group:label"` split and checked: the group exists, is a classification group and has the label."""
    if not isinstance(ref, str) or ":" not in ref:
        raise ValueError(f"{where}: a label is written `group:label`, got {ref!r}.")
    name, label = ref.split(":", 1)
    if name not in groups:
        raise ValueError(f"{where}: no group `{name}` (in {ref!r}); the groups are {list(groups)}.")
    if groups[name]["type"] == "regression" or label not in groups[name]["labels"]:
        raise ValueError(f"{where}: group `{name}` has no label {label!r} (in {ref!r}).")
    return name, label


def normalize_relations(relations: Any, groups: list[dict]) -> list[dict]:
    """Validate the relations between groups and return them in canonical form. Two kinds:

    - `{"if": "aspects:BATTERY#QUALITY", "then": ["entities:BATTERY", "attributes:QUALITY"]}`: a multilabel label
      implies labels of other groups (multilabel, or the class of a multiclass group).
    - `{"compose": "aspects", "of": ["entities", "attributes"], "separator": "#"}`: every label of the multilabel
      group `aspects` is an `entities` label and an `attributes` label joined by the separator; it implies both,
      and an `entities` or `attributes` label holds only with one of its `aspects`.
    """
    if relations is None:
        return []
    if not isinstance(relations, (list, tuple)):
        raise ValueError(f"`relations` must be a list of relation dicts, got {relations!r}.")
    by_name, out = {group["name"]: group for group in groups}, []
    for i, relation in enumerate(relations):
        where = f"Relation #{i}"
        if isinstance(relation, dict) and set(relation) == {"if", "then"}:
            name, label = _label_ref(relation["if"], by_name, where)
            if by_name[name]["type"] != "multilabel":
                raise ValueError(
                    f"{where}: `if` must be a multilabel group's label, `{name}` is {by_name[name]['type']}."
                )
            then = relation["then"] if isinstance(relation["then"], (list, tuple)) else [relation["then"]]
            if not then or any(_label_ref(ref, by_name, where)[0] == name for ref in then):
                raise ValueError(f"{where}: `then` must name labels of other groups than `{name}`, got {then!r}.")
            out.append({"if": f"{name}:{label}", "then": [":".join(_label_ref(ref, by_name, where)) for ref in then]})
        elif isinstance(relation, dict) and set(relation) == {"compose", "of", "separator"}:
            out.append(_check_compose(relation, by_name, where))
        else:
            raise ValueError(
                f"{where}: expected {{'if': 'group:label', 'then': ['group:label', ...]}} or {{'compose': 'group', "
                f"'of': ['group', ...], 'separator': '#'}}, got {relation!r}."
            )
    return out


def _check_compose(relation: dict, groups: dict[str, dict], where: str) -> dict:
    composed, parts, separator = relation["compose"], relation["of"], relation["separator"]
    names = [composed, *parts] if isinstance(parts, (list, tuple)) else [composed, parts]
    for name in names:
        if name not in groups or groups[name]["type"] != "multilabel":
            raise ValueError(f"{where}: `{name}` must be a multilabel group; the groups are {list(groups)}.")
    if not isinstance(parts, (list, tuple)) or len(parts) < 1 or composed in parts or len(set(parts)) < len(parts):
        raise ValueError(f"{where}: `of` must list other multilabel groups than `{composed}`, got {parts!r}.")
    if not isinstance(separator, str) or not separator:
        raise ValueError(f"{where}: `separator` must be a non-empty string such as '#', got {separator!r}.")
    for label in groups[composed]["labels"]:
        pieces = _pieces(label, parts, separator)
        if len(pieces) != len(parts) or any(p not in groups[g]["labels"] for p, g in zip(pieces, parts)):
            raise ValueError(
                f"{where}: `{composed}` label {label!r} is not {separator.join(f'<{g} label>' for g in parts)}; "
                "fix the label or the relation."
            )
    return {"compose": composed, "of": list(parts), "separator": separator}


def _pieces(label: str, parts: list[str], separator: str) -> list[str]:
    """A composed label's parts, one per group of `of` (a single group: the label's first piece)."""
    return label.split(separator) if len(parts) > 1 else [label.split(separator)[0]]


def relation_columns(relations: list[dict], groups: list[dict], slices: dict[str, slice]) -> tuple[list, list]:
    """The relations as logits columns (`slices`: the config's `group_slices`): `implies` `[(column, [columns it
    implies])]` and `requires` `[(column, [columns one of which must hold with it])]` (a composed group's parts)."""
    by_name = {group["name"]: group for group in groups}
    column = lambda name, label: slices[name].start + by_name[name]["labels"].index(label)  # noqa: E731
    implies, requires = {}, {}
    for relation in relations:
        if "if" in relation:
            implied = [column(*ref.split(":", 1)) for ref in relation["then"]]
            implies.setdefault(column(*relation["if"].split(":", 1)), []).extend(implied)
            continue
        composed, parts, separator = relation["compose"], relation["of"], relation["separator"]
        for label in by_name[composed]["labels"]:
            child = column(composed, label)
            for piece, part in zip(_pieces(label, parts, separator), parts):
                implies.setdefault(child, []).append(column(part, piece))
                requires.setdefault(column(part, piece), []).append(child)
    return [(c, sorted(set(p))) for c, p in implies.items()], [(p, sorted(set(c))) for p, c in requires.items()]


def balance_weights(groups: list[dict], relations: list[dict] | None) -> list[float]:
    """Each group's `weight` divided by the size of its family: the groups the relations link (a composed group
    and its parts are one annotation seen at three grains, so together they pull on the shared encoder as one
    group does). Without relations, the weights themselves.

    On SemEval-2016 laptops (`aspects` = `entities#attributes`, 2 epochs, four seeds) with a share each the three
    views took three quarters of the gradient and `polarity` macro-F1 trailed a model of its own by 0.060; with one
    share for the family by 0.021, for `attributes` -0.024 (`scripts/bench_quality.py`, arm `joint_equal_shares`).
    """
    names = [group["name"] for group in groups]
    family = {name: {name} for name in names}
    for relation in relations or []:
        refs = [relation["if"], *relation["then"]] if "if" in relation else [relation["compose"], *relation["of"]]
        linked = set().union(*(family[ref.split(":", 1)[0]] for ref in refs))
        for name in linked:
            family[name] = linked
    return [float(group["weight"]) / len(family[group["name"]]) for group in groups]


# How far below 0 the summed margins of a part without any of its composed labels, its best composed label and the
# other labels that one implies may fall for the composed label to be brought in (else the part goes): on the
# validation split of SemEval-2016 laptops (four seeds of `multigroup train`'s models), 0.5 gave the best worst-group
# F1 change against deciding each group alone among 0, 0.5, 1 and 2 (`scripts/bench_relations.py --split validation
# --slacks ...`; the test split is reported without it).
REQUIRED_SLACK = 0.5


def keep_relations(decided: list[dict], slices: dict[str, slice], implies: list, requires: list) -> None:
    """Keep the relations, in place: afterwards no label holds without every label it implies, and no part of a
    composed group holds without one of its composed labels.

    A label's margin is its log-odds minus its threshold's (multilabel), or its log-probability minus its group's
    best one (multiclass, 0 for the chosen class). A multilabel label that holds brings in the multilabel labels it
    implies (it passed its own threshold: on SemEval laptops this kept more F1 than weighing it against them); a
    class it implies is switched to when the two margins sum to >= 0, else the label goes. A part that holds
    without any of its composed labels brings in its best one, with what that one implies, when the margins of
    the part, that label and the other labels it implies sum to >= -REQUIRED_SLACK, else goes: those that hold
    count as support (a rare composed label's own score starts at its prior, the product of its parts' rarities,
    so alone it understates what the parts say). A last pass drops whatever still contradicts, until nothing does.
    `slices`: the config's `group_slices`.
    """
    start = max(columns.stop for columns in slices.values())
    parts = [part for part in decided if "values" not in part]
    if not parts:
        return
    rows, device = parts[0]["scores"].shape[1], parts[0]["scores"].device
    on = torch.zeros(rows, start, dtype=torch.bool, device=device)
    margin = torch.zeros(rows, start, device=device)
    multiclass = {}  # column -> its multiclass group's columns
    for part in parts:
        for g, group in enumerate(part["groups"]):
            columns = slices[group["name"]]
            scores = part["scores"][g].clamp(1e-7, 1 - 1e-7)
            if "index" in part:
                on[:, columns] = torch.nn.functional.one_hot(part["index"][g], scores.shape[-1]).bool()
                margin[:, columns] = scores.log() - scores.max(-1, keepdim=True).values.log()
                multiclass.update(dict.fromkeys(range(columns.start, columns.stop), columns))
            else:
                cut = part["cut"][g].clamp(1e-7, 1 - 1e-7)
                on[:, columns] = part["selected"][g]
                margin[:, columns] = (scores / (1 - scores)).log() - (cut / (1 - cut)).log()

    def switch_on(column: int, where: torch.Tensor) -> None:
        if column in multiclass:  # the class replaces its group's chosen one
            on[where, multiclass[column]] = False
        on[where, column] = True

    parents_of = dict(implies)
    # Which relation each row breaks, for every relation at once (a few matrix products, not a loop per label):
    # a child's parents that do not hold, and a required part's composed labels that do.
    children = torch.tensor([child for child, _ in implies], dtype=torch.long, device=device)
    implied = torch.zeros(len(implies), start, device=device)
    for k, (_, parents) in enumerate(implies):
        implied[k, parents] = 1.0
    required = torch.tensor([parent for parent, _ in requires], dtype=torch.long, device=device)
    composed = torch.zeros(len(requires), start, device=device)
    for k, (_, members) in enumerate(requires):
        composed[k, members] = 1.0

    def broken() -> tuple[torch.Tensor, torch.Tensor]:
        """(rows, implies) a child held without a parent; (rows, requires) a part held without a composed label."""
        lacking = on[:, children] & ((~on).float() @ implied.T > 0)
        alone = on[:, required] & (on.float() @ composed.T == 0)
        return lacking, alone

    for _ in range(len(implies)):  # again while it brings labels in: a chain A -> B -> C in any listed order
        brought = False
        for k in broken()[0].any(0).nonzero()[:, 0].tolist():
            child, parents = implies[k]
            held = on[:, child]
            keep = held.clone()  # a class it implies must win on both margins, or the label goes with nothing
            for parent in parents:
                if parent in multiclass:
                    keep &= on[:, parent] | (margin[:, child] + margin[:, parent] >= 0)
            on[held & ~keep, child] = False
            for parent in parents:
                bring = keep & ~on[:, parent]
                if bring.any():
                    switch_on(parent, bring)
                    brought = True
        if not brought:
            break
    for k in broken()[1].any(0).nonzero()[:, 0].tolist():
        parent, members = requires[k]
        need = on[:, parent] & ~on[:, members].any(-1)
        if not need.any():
            continue
        # a composed label's support: its margin, and those of the other labels it implies (held or brought in)
        cost = margin[:, members].clone()
        for j, child in enumerate(members):
            for other in parents_of.get(child, []):
                if other != parent:
                    cost[:, j] += margin[:, other]
        best, which = (cost + margin[:, parent : parent + 1]).max(-1)
        bring = need & (best >= -REQUIRED_SLACK)
        for j, child in enumerate(members):
            rows_j = bring & (which == j)
            if rows_j.any():
                for column in [child, *parents_of.get(child, [])]:
                    switch_on(column, rows_j)
        on[need & ~bring, parent] = False
    while True:  # drop what still contradicts; each pass only removes labels, and which it removes depends on
        lacking, alone = broken()  # no order: the same labels go as one by one
        if not (lacking.any() or alone.any()):
            break
        on[:, children] &= ~lacking
        on[:, required] &= ~alone
    for part in parts:
        for g, group in enumerate(part["groups"]):
            columns = slices[group["name"]]
            if "index" in part:
                part["index"][g] = on[:, columns].float().argmax(-1)
            else:
                part["selected"][g] = on[:, columns]
