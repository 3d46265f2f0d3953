"""Properties of the spec, the loss and the decoding, over random group specs and batches (hypothesis)."""

import copy

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from multigroup import MultiGroupConfig
from multigroup.modeling_multigroup import multi_group_loss

label = st.text(alphabet='abcdefgh#_ é"<>', min_size=1, max_size=6)


@st.composite
def group_specs(draw):
    count = draw(st.integers(1, 4))
    groups = []
    for i in range(count):
        kind = draw(st.sampled_from(["multiclass", "multilabel", "regression"]))
        group = {"name": f"g{i}", "type": kind, "weight": draw(st.floats(0.1, 5.0))}
        if kind != "regression":
            group["labels"] = draw(st.lists(label, min_size=2 if kind == "multiclass" else 1, max_size=5, unique=True))
        if kind == "multilabel":
            group["threshold"] = draw(st.floats(0.05, 0.95))
        groups.append(group)
    return MultiGroupConfig(groups=groups)


@st.composite
def examples(draw, config, allow_missing=True):
    example = {}
    for group in config.groups:
        if allow_missing and draw(st.booleans()) and draw(st.booleans()):
            continue
        if group["type"] == "multiclass":
            example[group["name"]] = draw(st.sampled_from(group["labels"]))
        elif group["type"] == "multilabel":
            example[group["name"]] = draw(st.lists(st.sampled_from(group["labels"]), unique=True))
        else:
            example[group["name"]] = draw(st.floats(-100, 100))
    return example


@st.composite
def batches(draw, min_rows=1, allow_missing=True):
    config = draw(group_specs())
    rows = draw(st.lists(examples(config, allow_missing), min_size=min_rows, max_size=8))
    # float64: regression targets up to 100 make losses large, and these properties are about exact arithmetic
    labels = torch.tensor([config.encode_labels(row) for row in rows], dtype=torch.float64)
    generator = torch.Generator().manual_seed(draw(st.integers(0, 99)))
    logits = torch.randn(len(rows), config.num_columns, generator=generator, dtype=torch.float64)
    return config, rows, labels, logits


def decoded_labels(config, logits_row, threshold=None):
    return config.decode(logits_row.unsqueeze(0), threshold=threshold)[0]


@settings(max_examples=60, deadline=None)
@given(batches(allow_missing=False))
def test_encode_then_decode_of_the_targets_gives_back_the_example(batch):
    """Logits that equal a large multiple of the target row decode to the example's own labels."""
    config, rows, labels, _ = batch
    for row, target in zip(rows, labels):
        logits = torch.where(target > 0.5, 20.0, -20.0)
        for group, columns in zip(config.groups, config.group_slices.values()):
            if group["type"] == "regression":
                logits[columns] = target[columns]
        decoded = decoded_labels(config, logits)
        for group in config.groups:
            got, want = decoded[group["name"]], row[group["name"]]
            if group["type"] == "multiclass":
                assert got["label"] == want
            elif group["type"] == "multilabel":
                assert sorted(p["label"] for p in got) == sorted(want)
            else:
                assert abs(got["value"] - want) < 1e-3 * max(1, abs(want))


@settings(max_examples=60, deadline=None)
@given(batches(min_rows=2), st.randoms())
def test_loss_does_not_depend_on_batch_order(batch, random):
    config, _, labels, logits = batch
    order = list(range(len(labels)))
    random.shuffle(order)
    torch.testing.assert_close(
        multi_group_loss(logits, labels, config)[0], multi_group_loss(logits[order], labels[order], config)[0]
    )


@settings(max_examples=60, deadline=None)
@given(batches(min_rows=2, allow_missing=False), st.data())
def test_masking_a_group_for_some_rows_equals_dropping_those_rows(batch, data):
    config, _, labels, logits = batch
    group = data.draw(st.sampled_from(config.groups))
    columns = config.group_slices[group["name"]]
    dropped = data.draw(st.lists(st.integers(0, len(labels) - 1), unique=True, max_size=len(labels) - 1))
    masked = labels.clone()
    masked[dropped, columns] = float("nan")
    kept = [i for i in range(len(labels)) if i not in dropped]
    _, masked_parts = multi_group_loss(logits, masked, config)
    _, kept_parts = multi_group_loss(logits[kept], labels[kept], config)
    torch.testing.assert_close(masked_parts[group["name"]], kept_parts[group["name"]])


@settings(max_examples=60, deadline=None)
@given(batches(allow_missing=False), st.data(), st.floats(0.0, 10.0))
def test_scaling_a_weight_scales_its_term(batch, data, factor):
    config, _, labels, logits = batch
    index = data.draw(st.integers(0, len(config.groups) - 1))
    before, parts = multi_group_loss(logits, labels, config)
    scaled = copy.deepcopy(config)
    scaled.groups[index]["weight"] *= factor
    after, _ = multi_group_loss(logits, labels, scaled)
    term = config.groups[index]["weight"] * parts[config.groups[index]["name"]]
    torch.testing.assert_close(after - before, (factor - 1) * term, rtol=1e-4, atol=1e-4)


@settings(max_examples=60, deadline=None)
@given(batches(allow_missing=False), st.data())
def test_zero_weight_sends_no_gradient_to_its_columns(batch, data):
    config, _, labels, logits = batch
    index = data.draw(st.integers(0, len(config.groups) - 1))
    config.groups[index]["weight"] = 0.0
    logits = logits.clone().requires_grad_()
    multi_group_loss(logits, labels, config)[0].backward()
    columns = list(config.group_slices.values())[index]
    assert torch.all(logits.grad[:, columns] == 0)


@settings(max_examples=80, deadline=None)
@given(batches())
def test_decoding_gives_exactly_one_label_per_multiclass_group(batch):
    config, _, _, logits = batch
    for row in config.decode(logits):
        for group in config.groups:
            if group["type"] == "multiclass":
                assert isinstance(row[group["name"]], dict) and row[group["name"]]["label"] in group["labels"]


@settings(max_examples=80, deadline=None)
@given(batches(), st.floats(0.01, 0.98), st.floats(0.0, 0.5))
def test_raising_a_threshold_never_adds_labels(batch, low, step):
    config, _, _, logits = batch
    high = min(low + step, 0.99)
    for lower, higher in zip(config.decode(logits, threshold=low), config.decode(logits, threshold=high)):
        for group in config.groups:
            if group["type"] == "multilabel":
                assert {p["label"] for p in higher[group["name"]]} <= {p["label"] for p in lower[group["name"]]}
