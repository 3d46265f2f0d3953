"""The batched decode against the decode it replaced (kept below as the reference), over seeded random specs.

Labels and their order must match exactly, ties included (integer and saturated logits); scores to float tolerance.
"""

import math
import random
import re

import pytest
import torch

from multigroup import MultiGroupConfig

# -- the reference: `group_predictions` and `decode` as they were, a loop over rows and groups in Python ----------


def reference_threshold_overrides(config, threshold):
    from multigroup.spec_multigroup import check_threshold

    multilabel = {group["name"]: group for group in config.groups if group["type"] == "multilabel"}
    if threshold is None:
        return {}
    if not isinstance(threshold, dict):
        threshold = dict.fromkeys(multilabel, threshold)
    for name in threshold:
        if name not in multilabel:
            raise ValueError(f"`threshold` names {name!r}, which is not a multilabel group: {list(multilabel)}.")
    return {
        name: check_threshold(name, value, len(multilabel[name]["labels"]), "`threshold=`")
        for name, value in threshold.items()
    }


def reference_group_predictions(config, logits, threshold=None):
    logits = torch.as_tensor(logits).float()
    if logits.dim() != 2 or logits.shape[-1] != config.num_columns:
        raise ValueError(
            f"Expected logits of shape (n, {config.num_columns}) for groups {config.group_names}, got "
            f"{tuple(logits.shape)}."
        )
    overrides = reference_threshold_overrides(config, threshold)
    out = {}
    for group, columns in zip(config.groups, config.group_slices.values()):
        name, scores = group["name"], logits[:, columns]
        if group["type"] == "regression":
            out[name] = {"values": scores[:, 0]}
        elif group["type"] == "multiclass":
            probs = scores.softmax(-1)
            out[name] = {"scores": probs, "index": probs.argmax(-1)}
        else:
            probs = scores.sigmoid()
            threshold = torch.tensor(overrides.get(name, group["threshold"]), device=probs.device)
            selected = probs >= threshold
            if not group["allow_empty"]:
                best = torch.nn.functional.one_hot(probs.argmax(-1), probs.shape[-1]).bool()
                selected = selected | (best & ~selected.any(-1, keepdim=True))
            out[name] = {"scores": probs, "selected": selected}
    return out


def reference_decode(config, logits, top_k=1, threshold=None, groups=None):
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
        raise ValueError(f"`top_k` must be a positive int or None (every label), got {top_k!r}.")
    if groups is not None:
        if isinstance(groups, str) or not all(isinstance(name, str) for name in groups):
            raise TypeError(f"`groups` must be a list of group names, got {groups!r}.")
        for name in groups:
            config.group(name)
    predictions = reference_group_predictions(config, logits, threshold)
    wanted = [group for group in config.groups if groups is None or group["name"] in groups]
    values = {name: {key: tensor.tolist() for key, tensor in pred.items()} for name, pred in predictions.items()}
    rows = []
    for i in range(len(logits)):
        row = {}
        for group in wanted:
            pred, labels = values[group["name"]], group["labels"]
            if group["type"] == "regression":
                row[group["name"]] = {"value": pred["values"][i]}
                continue
            scores = pred["scores"][i]
            order = sorted(range(len(labels)), key=lambda j: -scores[j])
            ranked = [{"label": labels[j], "score": scores[j]} for j in order]
            if top_k != 1:
                row[group["name"]] = ranked[:top_k]
            elif group["type"] == "multiclass":
                row[group["name"]] = ranked[0]
            else:
                chosen = pred["selected"][i]
                row[group["name"]] = [ranked[r] for r, j in enumerate(order) if chosen[j]]
        rows.append(row)
    return rows


# -- random specs, logits and arguments -------------------------------------------------------------------------


def random_threshold(rng, width):
    """One probability for the group or one per label, on a grid (some land exactly on a label's score)."""
    grid = [0.05, 0.1, 0.25, 0.3, 0.5, 0.7310585786300049, 0.75, 0.9, 0.95]
    return [rng.choice(grid) for _ in range(width)] if rng.random() < 0.5 else rng.choice(grid)


def random_config(rng, max_groups=10, max_width=7):
    groups = []
    for i in range(rng.randint(1, max_groups)):
        kind = rng.choice(["multiclass", "multilabel", "regression"])
        group = {"name": f"g{i}", "type": kind}
        if kind != "regression":
            # mostly narrow groups; now and then one wider than a vector of 8 or 16 floats
            width = rng.randint(2 if kind == "multiclass" else 1, max_width if rng.random() < 0.9 else 20)
            group["labels"] = [f"{group['name']}_l{j}" for j in range(width)]
        if kind == "multilabel":
            group["allow_empty"] = rng.random() < 0.5
            if rng.random() < 0.7:
                group["threshold"] = random_threshold(rng, width)
        groups.append(group)
    return MultiGroupConfig(groups=groups)


def random_logits(rng, rows, columns):
    generator = torch.Generator().manual_seed(rng.randrange(2**31))
    style = rng.choice(["normal", "integers", "saturated", "zeros", "mixed"])
    if style == "normal":
        return torch.randn(rows, columns, generator=generator) * rng.choice([0.5, 2.0, 8.0])
    if style == "integers":  # ties within a group
        return torch.randint(-3, 4, (rows, columns), generator=generator).float()
    if style == "saturated":  # sigmoid rounds to 1.0 (or to one float32 step below) from about 16 up
        return torch.randint(-25, 26, (rows, columns), generator=generator).float()
    if style == "zeros":
        return torch.zeros(rows, columns)
    logits = torch.randint(-2, 3, (rows, columns), generator=generator).float() / 2
    logits[torch.rand(rows, columns, generator=generator) < 0.3] = 0.0
    return logits.double() if rng.random() < 0.5 else logits  # float64 input is decoded in float32, as before


def random_arguments(rng, config):
    multilabel = [group for group in config.groups if group["type"] == "multilabel"]
    threshold = None
    roll = rng.random()
    if roll < 0.3 and multilabel:
        threshold = rng.choice([0.1, 0.3, 0.5, 0.9])
    elif roll < 0.6 and multilabel:
        chosen = rng.sample(multilabel, rng.randint(1, len(multilabel)))
        threshold = {group["name"]: random_threshold(rng, len(group["labels"])) for group in chosen}
    groups = None
    if rng.random() < 0.3:
        groups = rng.sample(config.group_names, rng.randint(0, len(config.group_names)))
    return threshold, groups


def assert_same_rows(new, old, context):
    assert type(new) is list and len(new) == len(old), context
    for i, (row, expected) in enumerate(zip(new, old)):
        assert type(row) is dict and list(row) == list(expected), (context, i)
        for name, value in expected.items():
            assert_same_value(row[name], value, (context, i, name))


def assert_same_value(value, expected, context):
    if isinstance(expected, list):
        assert type(value) is list, context
        assert [entry["label"] for entry in value] == [entry["label"] for entry in expected], context
        for entry, want in zip(value, expected):
            assert_same_value(entry, want, context)
        return
    assert type(value) is dict and list(value) == list(expected), context
    for key, want in expected.items():
        got = value[key]
        assert type(got) is type(want), context
        if isinstance(want, float):
            both_nan = math.isnan(got) and math.isnan(want)
            assert both_nan or math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-7), context
        else:
            assert got == want, context


TOP_KS = [1, 2, 3, None, 100]


# -- properties ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(80))
def test_decode_matches_the_reference(seed):
    rng = random.Random(seed)
    config = random_config(rng)
    rows = rng.choice([0, 1, 2, 7, 33])
    logits = random_logits(rng, rows, config.num_columns)
    for _ in range(4):
        threshold, groups = random_arguments(rng, config)
        for top_k in TOP_KS:
            context = (seed, top_k, threshold, groups)
            new = config.decode(logits, top_k=top_k, threshold=threshold, groups=groups)
            old = reference_decode(config, logits, top_k=top_k, threshold=threshold, groups=groups)
            assert_same_rows(new, old, context)


@pytest.mark.parametrize("seed", range(30))
def test_group_predictions_match_the_reference(seed):
    rng = random.Random(1000 + seed)
    config = random_config(rng)
    logits = random_logits(rng, rng.choice([0, 1, 5, 40]), config.num_columns)
    threshold, _ = random_arguments(rng, config)
    new = config.group_predictions(logits, threshold)
    old = reference_group_predictions(config, logits, threshold)
    assert list(new) == list(old) == config.group_names
    for name, expected in old.items():
        assert list(new[name]) == list(expected), name
        for key, want in expected.items():
            got = new[name][key]
            assert got.shape == want.shape and got.dtype == want.dtype, (name, key)
            if want.dtype.is_floating_point:
                torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7, equal_nan=True)
            else:
                assert torch.equal(got, want), (name, key)


def test_scores_are_bit_for_bit_those_of_each_group_alone():
    """Not only close: a score one ulp off can break a tie or cross a threshold, which the labels would show."""
    rng = random.Random(3)
    for _ in range(20):
        config = random_config(rng, max_groups=30)
        logits = random_logits(rng, 16, config.num_columns)
        new, old = config.group_predictions(logits), reference_group_predictions(config, logits)
        for name, expected in old.items():
            for key, want in expected.items():
                assert torch.equal(new[name][key], want), (name, key)


@pytest.mark.parametrize("seed", range(10))
def test_non_finite_logits_decode_as_before(seed):
    """NaN scores have no order: such rows keep the order Python's `sorted` gave them."""
    rng = random.Random(2000 + seed)
    config = random_config(rng)
    logits = random_logits(rng, 9, config.num_columns).float()
    generator = torch.Generator().manual_seed(seed)
    for value in (float("nan"), float("inf"), -float("inf")):
        logits[torch.rand(logits.shape, generator=generator) < 0.1] = value
    for top_k in TOP_KS:
        new, old = config.decode(logits, top_k=top_k), reference_decode(config, logits, top_k=top_k)
        assert_same_rows(new, old, (seed, top_k))


def test_hundreds_of_groups_match_the_reference():
    groups = []
    for i, kind in enumerate(["multiclass", "multilabel", "regression"] * 140):
        group = {"name": f"g{i}", "type": kind}
        if kind != "regression":
            group["labels"] = [f"l{j}" for j in range(5)]
        if kind == "multilabel":
            group["allow_empty"] = i % 3 == 0
        groups.append(group)
    config = MultiGroupConfig(groups=groups)
    logits = torch.randint(-4, 5, (12, config.num_columns), generator=torch.Generator().manual_seed(0)).float()
    for top_k in TOP_KS:
        assert_same_rows(config.decode(logits, top_k=top_k), reference_decode(config, logits, top_k=top_k), top_k)


def test_rows_are_new_objects():
    """Each row owns its dicts and lists: a caller may edit one without touching another."""
    config = MultiGroupConfig(groups=[{"name": "t", "type": "multilabel", "labels": ["a", "b"]}])
    first, second = config.decode(torch.zeros(2, 2), top_k=None)
    first["t"][0]["score"] = -1.0
    first["t"].append("x")
    assert second["t"] == [{"label": "a", "score": 0.5}, {"label": "b", "score": 0.5}]


BAD_ARGUMENTS = [
    {"top_k": 0},
    {"top_k": -2},
    {"top_k": True},
    {"top_k": 1.0},
    {"top_k": "3"},
    {"groups": "score"},
    {"groups": ["nope"]},
    {"groups": [1]},
    {"threshold": 1.5},
    {"threshold": 0},
    {"threshold": {"score": 0.5}},
    {"threshold": {"topics": [0.5, 0.5]}},
    {"threshold": {"topics": [0.5, 0.5, 1.0]}},
    {"threshold": "0.5"},
]


@pytest.mark.parametrize("kwargs", BAD_ARGUMENTS, ids=repr)
@pytest.mark.parametrize("shape", [(2, 7), (7,), (2, 6)])
def test_bad_arguments_raise_as_before(kwargs, shape):
    config = MultiGroupConfig(
        groups=[
            {"name": "score", "type": "multiclass", "labels": ["bad", "ok", "good"]},
            {"name": "topics", "type": "multilabel", "labels": ["food", "service", "price"]},
            {"name": "stars", "type": "regression"},
        ]
    )
    logits = torch.zeros(shape)
    with pytest.raises(Exception) as expected:
        reference_decode(config, logits, **kwargs)
    with pytest.raises(expected.type, match=f"^{re.escape(str(expected.value))}$"):
        config.decode(logits, **kwargs)
    if shape == (2, 7):  # the options alone, as the pipeline and the server check them before any text is encoded
        with pytest.raises(expected.type, match=f"^{re.escape(str(expected.value))}$"):
            config.check_options(**kwargs)


def test_float_outputs_are_python_floats():
    config = MultiGroupConfig(
        groups=[{"name": "s", "type": "regression"}, {"name": "c", "type": "multiclass", "labels": ["x", "y"]}]
    )
    (row,) = config.decode([[1.25, 0.0, 1.0]])
    assert type(row["s"]["value"]) is float and type(row["c"]["score"]) is float
    assert row == {"s": {"value": 1.25}, "c": {"label": "y", "score": pytest.approx(1 / (1 + math.exp(-1)))}}


def test_decode_leaves_the_garbage_collector_as_it_found_it():
    """Decoding pauses the cyclic collector while it builds the output; it is back on after, even after an error,
    and a collector the caller paused stays paused."""
    import gc

    config = MultiGroupConfig(groups=[{"name": "a", "type": "multilabel", "labels": ["x", "y"]}])
    logits = torch.zeros(3, 2)
    seen = []
    original = config._decide

    def spy(*args):
        seen.append(gc.isenabled())
        return original(*args)

    config._decide = spy
    assert gc.isenabled()
    assert config.decode(logits) == reference_decode(config, logits)
    assert seen == [False] and gc.isenabled()

    def broken(*args):
        raise RuntimeError("in the middle of decoding")

    config._decide = broken
    with pytest.raises(RuntimeError, match="in the middle of decoding"):
        config.decode(logits)
    assert gc.isenabled()
    config._decide = spy
    gc.disable()
    try:
        config.decode(logits)
        assert not gc.isenabled()
    finally:
        gc.enable()


def _same_cells(got, want) -> bool:
    """Equal, NaN equal to NaN, lists element by element."""
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(_same_cells, got, want))
    if isinstance(want, float) and math.isnan(want):
        return isinstance(got, float) and math.isnan(got)
    return type(got) is type(want) and got == want


@pytest.mark.parametrize("seed", range(40))
def test_prediction_table_holds_the_decoded_rows_as_columns(seed):
    """The bulk output (`predict --output x.parquet`) is `prediction_columns(decode(...))`, built from tensors."""
    from multigroup.inference import prediction_columns, prediction_schema, prediction_table

    rng = random.Random(3000 + seed)
    config = random_config(rng, max_groups=30)
    logits = random_logits(rng, rng.choice([0, 1, 6, 33]), config.num_columns).float()
    if seed % 4 == 0:
        logits[torch.rand(logits.shape, generator=torch.Generator().manual_seed(seed)) < 0.1] = float("nan")
    threshold, groups = random_arguments(rng, config)
    for top_k in (1, None, 2):
        table = prediction_table(config, logits, top_k=top_k, threshold=threshold, groups=groups)
        want = prediction_columns(config.decode(logits, top_k=top_k, threshold=threshold, groups=groups))
        assert table.schema == prediction_schema(config, top_k, groups), (seed, top_k)
        assert table.num_rows == (len(logits) if groups != [] else 0), (seed, top_k)
        if len(logits):
            got = table.to_pydict()
            assert list(got) == list(want), (seed, top_k)
            for name, column in want.items():
                assert _same_cells(got[name], column), (seed, top_k, name)
