"""Relations between groups: the spec's checks, inference on constructed tables, a decode that never contradicts them
(over random specs, relations and scores), configs without relations decoding as before, and the saved config read
by the remote code."""

import numpy as np
import pytest
import torch
from datasets import Dataset
from hypothesis import given, settings
from hypothesis import strategies as st

from multigroup import MultiGroupConfig
from multigroup.relations import contradictions, infer_relations

from conftest import make_tokenizer, run_python, tiny_model

LAPTOPS = [
    {"name": "polarity", "type": "multiclass", "labels": ["negative", "positive"]},
    {"name": "entities", "type": "multilabel", "labels": ["BATTERY", "LAPTOP"]},
    {"name": "attributes", "type": "multilabel", "labels": ["PRICE", "QUALITY"]},
    {"name": "aspects", "type": "multilabel", "labels": ["BATTERY#QUALITY", "LAPTOP#PRICE", "LAPTOP#QUALITY"]},
]
COMPOSE = {"compose": "aspects", "of": ["entities", "attributes"], "separator": "#"}


@pytest.mark.parametrize(
    "relation, match",
    [
        ({"if": "aspect:LAPTOP#PRICE", "then": "entities:LAPTOP"}, r"no group `aspect` .* the groups are"),
        ({"if": "aspects:LAPTOP#SIZE", "then": "entities:LAPTOP"}, r"group `aspects` has no label 'LAPTOP#SIZE'"),
        ({"if": "aspects:LAPTOP#PRICE", "then": "LAPTOP"}, r"a label is written `group:label`, got 'LAPTOP'"),
        ({"if": "polarity:negative", "then": "entities:LAPTOP"}, r"`if` must be a multilabel group's label"),
        ({"if": "aspects:LAPTOP#PRICE", "then": "aspects:LAPTOP#QUALITY"}, r"labels of other groups than `aspects`"),
        ({"compose": "aspects", "of": ["entities", "polarity"], "separator": "#"}, r"`polarity` must be a multilabel"),
        (
            {"compose": "aspects", "of": ["attributes", "entities"], "separator": "#"},
            r"label 'BATTERY#QUALITY' is not",
        ),
        (
            {"compose": "aspects", "of": ["entities", "attributes"], "separator": ""},
            r"`separator` must be a non-empty",
        ),
        ({"if": "aspects:LAPTOP#PRICE"}, r"expected \{'if': 'group:label'"),
    ],
)
def test_a_bad_relation_is_refused_naming_the_group_and_label(relation, match):
    with pytest.raises(ValueError, match=rf"Relation #0: .*{match}"):
        MultiGroupConfig(groups=LAPTOPS, relations=[relation])


def test_relations_are_stored_in_canonical_form_and_round_trip():
    config = MultiGroupConfig(
        groups=LAPTOPS, relations=[COMPOSE, {"if": "aspects:LAPTOP#PRICE", "then": "polarity:negative"}]
    )
    assert config.relations[1] == {"if": "aspects:LAPTOP#PRICE", "then": ["polarity:negative"]}
    assert MultiGroupConfig.from_dict(config.to_dict()).relations == config.relations
    assert (
        MultiGroupConfig(groups=LAPTOPS).relations is None
        and "relations" in MultiGroupConfig(groups=LAPTOPS).to_dict()
    )


def _rows(count: int, seed: int = 0) -> list[dict]:
    """Rows whose entities and attributes are exactly their aspects' parts; `LAPTOP#PRICE` always negative."""
    rng = np.random.default_rng(seed)
    aspects = LAPTOPS[3]["labels"]
    rows = []
    for _ in range(count):
        chosen = sorted(set(rng.choice(aspects, size=rng.integers(0, 3))))
        negative = "LAPTOP#PRICE" in chosen or rng.random() < 0.5
        rows.append({"polarity": "negative" if negative else "positive", "aspects": chosen,
                     "entities": sorted({a.split("#")[0] for a in chosen}),
                     "attributes": sorted({a.split("#")[1] for a in chosen})})  # fmt: skip
    return rows


def test_infer_relations_finds_what_holds_on_every_row_and_nothing_else():
    rows = _rows(200)
    found = infer_relations(Dataset.from_list(rows), LAPTOPS, min_support=20)
    negative = ["polarity:negative"]
    assert found == [
        COMPOSE,
        {"if": "attributes:PRICE", "then": negative},
        {"if": "aspects:LAPTOP#PRICE", "then": negative},
    ]
    assert infer_relations(Dataset.from_list(rows), LAPTOPS, min_support=1000) == []  # too few rows to trust
    rows[7] = dict(entities=["BATTERY", "LAPTOP"], attributes=["PRICE"], aspects=["LAPTOP#PRICE"], polarity="positive")
    broken = infer_relations(Dataset.from_list(rows), LAPTOPS, min_support=20)  # one row breaks both
    assert COMPOSE not in broken and not [r for r in broken if "polarity:negative" in r.get("then", [])]
    assert {"if": "aspects:LAPTOP#PRICE", "then": ["entities:LAPTOP", "attributes:PRICE"]} in broken  # still true
    missing = [dict(row, polarity=None) for row in _rows(50, seed=1)]  # a row without a group says nothing of it
    assert infer_relations(Dataset.from_list(missing), LAPTOPS) == [COMPOSE]


@st.composite
def related_specs(draw):
    """Random multiclass and multilabel groups, a composed group over two of them, and random implications."""
    width = lambda: draw(st.integers(1, 4))  # noqa: E731
    left = [f"e{i}" for i in range(width())]
    right = [f"a{i}" for i in range(width())]
    pairs = draw(st.lists(st.sampled_from([f"{x}#{y}" for x in left for y in right]), min_size=1, unique=True))
    groups = [
        {"name": "mood", "type": "multiclass", "labels": ["m0", "m1", "m2"][: draw(st.integers(2, 3))]},
        {"name": "left", "type": "multilabel", "labels": left, "threshold": draw(st.floats(0.05, 0.95))},
        {"name": "right", "type": "multilabel", "labels": right},
        {"name": "pairs", "type": "multilabel", "labels": pairs, "allow_empty": draw(st.booleans())},
        {"name": "tags", "type": "multilabel", "labels": [f"t{i}" for i in range(width())]},
    ]
    relations = [{"compose": "pairs", "of": ["left", "right"], "separator": "#"}]
    for tag in groups[4]["labels"]:
        if draw(st.booleans()):
            targets = [f"mood:{m}" for m in groups[0]["labels"]] + [f"left:{x}" for x in left]
            then = draw(st.lists(st.sampled_from(targets), min_size=1, max_size=2))
            relations.append({"if": f"tags:{tag}", "then": then})
    return groups, relations


@settings(max_examples=80, deadline=None)
@given(related_specs(), st.integers(0, 2**31 - 1), st.floats(0.5, 6.0))
def test_the_decode_never_contradicts_the_relations(spec, seed, scale):
    groups, relations = spec
    config = MultiGroupConfig(groups=groups, relations=relations)
    logits = torch.randn(64, config.num_columns, generator=torch.Generator().manual_seed(seed)) * scale
    decided = config.group_predictions(logits)
    assert not contradictions(config, decided).any()
    assert all((decided["mood"]["scores"].argmax(-1) >= 0).tolist())  # a multiclass group keeps one class
    alone = MultiGroupConfig(groups=groups).group_predictions(logits)
    for name in config.group_names:  # scores never move; relations=False is the decode without relations
        assert torch.equal(decided[name]["scores"], alone[name]["scores"])
    for name, values in config.group_predictions(logits, relations=False).items():
        for key, value in values.items():
            assert torch.equal(value, alone[name][key]), (name, key)
    rows = config.decode(logits)  # the dicts the pipeline returns say the same
    for row, left in zip(rows, decided["left"]["selected"]):
        assert {e["label"] for e in row["left"]} == {
            config.group("left")["labels"][j] for j in left.nonzero()[:, 0].tolist()
        }
    only = config.decode(logits, groups=["left"])  # a restricted call still decides with every group
    assert [row["left"] for row in only] == [row["left"] for row in rows]


def test_a_conflict_is_decided_from_both_margins():
    """Margins in log-odds against the threshold (0.3 here): a kept aspect brings its parts in; a part without an
    aspect brings its best one in when the margins of the part, the aspect and its other part sum to >= -0.5
    (`REQUIRED_SLACK`), else goes; an implied class is switched to when the two margins sum to >= 0, else the
    implying label goes."""
    implied = {"if": "aspects:LAPTOP#PRICE", "then": "polarity:negative"}
    config = MultiGroupConfig(groups=LAPTOPS, relations=[COMPOSE, implied])
    logit = lambda p: float(np.log(p / (1 - p)))  # noqa: E731
    low = logit(0.1)
    rows = [  # polarity (negative, positive), entities, attributes, aspects (B#Q, L#P, L#Q)
        [0.0, 0.0, logit(0.2), low, low, low, logit(0.95), low, low],  # an aspect alone: its parts come in
        [0.0, 0.0, low, logit(0.97), logit(0.4), low, low, low, logit(0.29)],  # margins 4.3 - 1.35 >= 0: in
        [0.0, 0.0, logit(0.35), low, low, low, logit(0.01), low, low],  # margins 0.22 - 3.75 - 1.35 < 0: out
        [0.0, float(np.log(4)), low, low, low, low, low, logit(0.9), low],  # 3.04 - 1.39 >= 0: negative
        [0.0, float(np.log(19)), low, low, low, low, low, logit(0.35), low],  # 0.22 - 2.94 < 0: the aspect goes
        [0.0, 0.0, low, logit(0.4), low, logit(0.4), low, low, logit(0.1)],  # 0.44 + 0.44 - 1.35 >= -0.5: all in
    ]
    decoded = config.decode(torch.tensor(rows))
    shown = [
        {name: [e["label"] for e in row[name]] for name in ("entities", "attributes", "aspects")} for row in decoded
    ]
    assert shown[0] == {"entities": ["BATTERY"], "attributes": ["QUALITY"], "aspects": ["BATTERY#QUALITY"]}
    assert shown[1] == {"entities": ["LAPTOP"], "attributes": ["PRICE"], "aspects": ["LAPTOP#PRICE"]}
    assert shown[2] == shown[4] == {"entities": [], "attributes": [], "aspects": []}
    assert shown[3] == {"entities": ["LAPTOP"], "attributes": ["PRICE"], "aspects": ["LAPTOP#PRICE"]}
    assert shown[5] == {"entities": ["LAPTOP"], "attributes": ["QUALITY"], "aspects": ["LAPTOP#QUALITY"]}
    assert [row["polarity"]["label"] for row in decoded] == ["negative"] * 3 + ["negative", "positive", "negative"]
    assert decoded[3]["polarity"]["score"] == pytest.approx(0.2)  # the scores stay the model's
    alone = config.decode(torch.tensor(rows), relations=False)
    assert [e["label"] for e in alone[1]["aspects"]] == [] and alone[3]["polarity"]["label"] == "positive"
    with pytest.raises(TypeError, match="`relations` must be True"):
        config.decode(torch.tensor(rows), relations="no")


def test_a_saved_model_with_relations_decodes_the_same_through_the_remote_code(tmp_path):
    """A process without multigroup reads the relations from config.json and keeps them, as multigroup does."""
    import json

    model, tokenizer = tiny_model(LAPTOPS, relations=[COMPOSE]), make_tokenizer()
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    texts = ["the food was great", "slow rude staff", "i love it", "very expensive but good"] * 4
    logits = torch.randn(len(texts), model.config.num_columns, generator=torch.Generator().manual_seed(0)) * 3
    torch.save(logits, tmp_path / "logits.pt")
    code = (
        "import json, torch\n"
        "from transformers import AutoConfig, pipeline\n"
        f"config = AutoConfig.from_pretrained({str(tmp_path / 'model')!r}, trust_remote_code=True)\n"
        f"logits = torch.load({str(tmp_path / 'logits.pt')!r})\n"
        f"clf = pipeline('multi-group-classification', model={str(tmp_path / 'model')!r}, trust_remote_code=True)\n"
        f"print(json.dumps([type(config).__module__, config.relations, config.decode(logits), clf({texts[:4]!r})]))\n"
    )
    result = run_python(code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    module, relations, decoded, answered = json.loads(result.stdout.strip().splitlines()[-1])
    assert module.startswith("transformers_modules") and relations == [COMPOSE]
    assert decoded == json.loads(json.dumps(model.config.decode(logits)))
    assert not contradictions(model.config, model.config.group_predictions(logits)).any()
    with torch.inference_mode():
        mine = model.config.decode(model(**tokenizer(texts[:4], padding=True, return_tensors="pt")).logits)
    assert [
        {k: [e["label"] for e in v] if isinstance(v, list) else v["label"] for k, v in row.items()} for row in answered
    ] == [{k: [e["label"] for e in v] if isinstance(v, list) else v["label"] for k, v in row.items()} for row in mine]


def test_the_pipeline_keeps_the_relations_unless_told_not_to():
    from multigroup.pipeline_multigroup import MultiGroupClassificationPipeline

    model, tokenizer = tiny_model(LAPTOPS, relations=[COMPOSE]), make_tokenizer()
    clf = MultiGroupClassificationPipeline(model=model, tokenizer=tokenizer)
    texts = ["the food was great", "slow rude staff", "i love it", "very expensive but good", "bad", "the queue"]
    with torch.inference_mode():
        logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    for group, columns in list(zip(model.config.groups, model.config.group_slices.values()))[1:]:
        # each label's median score: half the texts pass it, the groups then disagree on some
        group["threshold"] = logits[:, columns].sigmoid().median(0).values.tolist()
    assert clf(texts, batch_size=4) == model.config.decode(logits)
    assert clf(texts, relations=False) == model.config.decode(logits, relations=False)
    assert clf(texts) != clf(texts, relations=False)  # this model's groups disagree: the relations decide
    with pytest.raises(TypeError, match="`relations` must be True"):
        clf(texts, relations="yes")


def test_a_label_that_goes_brings_nothing_in_and_chains_hold_in_any_order():
    groups = [
        {"name": "aspects", "type": "multilabel", "labels": ["A", "Z"], "threshold": 0.5},
        {"name": "entities", "type": "multilabel", "labels": ["E", "F"], "threshold": 0.5},
        {"name": "polarity", "type": "multiclass", "labels": ["neg", "pos"]},
    ]
    implied = {"if": "aspects:A", "then": ["entities:E", "polarity:pos"]}
    config = MultiGroupConfig(groups=groups, relations=[implied])
    row = config.decode(torch.tensor([[3.0, -9.0, -5.0, -5.0, 4.0, -4.0]]))[0]  # pos loses on both margins
    assert row["aspects"] == [] and row["entities"] == [] and row["polarity"]["label"] == "neg"
    chain = [{"name": name, "type": "multilabel", "labels": ["x"], "threshold": 0.5} for name in ("a", "b", "c")]
    links = [{"if": "a:x", "then": "b:x"}, {"if": "b:x", "then": "c:x"}]
    logits = torch.tensor([[3.0, -3.0, -3.0]])  # only `a` passes: it brings `b`, which brings `c`
    for order in (links, links[::-1]):
        decoded = MultiGroupConfig(groups=chain, relations=order).decode(logits)[0]
        assert [len(decoded[name]) for name in ("a", "b", "c")] == [1, 1, 1], order


def test_inference_needs_rows_that_carry_the_groups():
    rows = _rows(60)
    table = Dataset.from_list([{k: v for k, v in row.items() if k != "polarity"} for row in rows])
    assert infer_relations(table, LAPTOPS) == [COMPOSE]  # a column left out is a group missing on every row
    apart = [dict(row, aspects=None) for row in rows[:30]] + [dict(row, entities=None) for row in rows[30:]]
    assert COMPOSE not in infer_relations(Dataset.from_list(apart), LAPTOPS)  # no row carries all three


def test_related_groups_share_one_groups_part_of_the_balanced_gradient():
    from multigroup.hub_code.relations_multigroup import balance_weights

    groups = MultiGroupConfig(groups=LAPTOPS).groups
    weights = lambda relations: balance_weights(groups, relations)  # noqa: E731
    assert weights(None) == [1.0, 1.0, 1.0, 1.0]
    assert weights([COMPOSE]) == [1.0, 1 / 3, 1 / 3, 1 / 3]  # one annotation at three grains pulls as one group
    implies = {"if": "aspects:LAPTOP#PRICE", "then": ["entities:LAPTOP"]}
    assert weights([implies]) == [1.0, 0.5, 1.0, 0.5]
    # Training: the balancer takes its shares from the relations, also when they are set after the model was built.
    model = tiny_model(LAPTOPS).train()
    row = {"polarity": "positive", "aspects": ["LAPTOP#PRICE"], "entities": ["LAPTOP"], "attributes": ["PRICE"]}
    labels = torch.tensor([model.config.encode_labels(row)] * 2)
    inputs = dict(make_tokenizer()(["a laptop", "its price"], padding=True, return_tensors="pt"))
    model(**inputs, labels=labels).loss.backward()
    assert model.classifier.balancer.shares == (0.25, 0.25, 0.25, 0.25)
    model.config.relations = [COMPOSE]
    model(**inputs, labels=labels).loss.backward()
    assert model.classifier.balancer.shares == pytest.approx((0.5, 1 / 6, 1 / 6, 1 / 6))


def test_a_new_heads_training_data_gives_it_the_relations_unless_it_was_given_some():
    """The plain path (`from_pretrained(encoder, groups=...)`, `prepare_dataset`, a Trainer) gets what `multigroup
    train` infers: the relations of the training rows, for the balancer's shares and the decode."""
    from multigroup.data import prepare_dataset

    rows = [dict(row, text=f"text {i}", polarity=["negative", "positive"][i % 2]) for i, row in enumerate(_rows(200))]
    table = Dataset.from_list(rows)  # polarity apart from the rest: only the composition holds
    model = tiny_model(LAPTOPS)  # a new head: relations not given
    assert model.config.relations is None
    prepare_dataset(table, make_tokenizer(), model.config)
    assert model.config.relations == [COMPOSE] == infer_relations(table, LAPTOPS)
    assert model.config.fit_priors is False
    model.classifier.train()
    assert model.classifier.layout.shares == pytest.approx((0.5, 1 / 6, 1 / 6, 1 / 6))
    for relations in ([], [COMPOSE]):  # given ones, none included, are kept
        config = tiny_model(LAPTOPS, relations=relations).config
        prepare_dataset(table, make_tokenizer(), config)
        assert config.relations == relations
    for options, training in (({}, False), ({"fit_priors": False}, True)):  # scored data, or not a new head
        config = tiny_model(LAPTOPS, **options).config
        prepare_dataset(table, make_tokenizer(), config, training=training)
        assert config.relations is None


def test_a_saved_config_without_relations_keeps_none_and_unknown_training_labels_say_nothing():
    from multigroup.data import prepare_dataset

    table = Dataset.from_list([dict(row, text=f"text {i}") for i, row in enumerate(_rows(200))])
    saved = tiny_model(LAPTOPS).config.to_dict()
    for config in (  # written by 0.4 for a trained model (`null`), or by 0.1-0.3 (no key, no `fit_priors`)
        MultiGroupConfig.from_dict({**saved, "relations": None, "fit_priors": False}),
        MultiGroupConfig.from_dict({k: v for k, v in saved.items() if k not in ("relations", "fit_priors")}),
    ):
        prepare_dataset(table, make_tokenizer(), config)
        assert config.relations is None and config.decode(torch.zeros(1, config.num_columns))  # decoded as before
    # A label the groups lack, dropped by `ignore_unknown_labels`, is no relation (it would not be a valid one).
    unknown = Dataset.from_list([dict(row, aspects=[*row["aspects"], "SCREEN#SIZE"]) for row in table])
    config = tiny_model(LAPTOPS).config
    prepare_dataset(unknown, make_tokenizer(), config, ignore_unknown_labels=True)
    assert COMPOSE in config.relations and "SCREEN" not in str(config.relations)
