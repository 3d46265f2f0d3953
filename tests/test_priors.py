"""Label priors: a new head starts each column at its label's training frequency (`fit_priors`, `prior`)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset

from multigroup import AutoModelForMultiGroupClassification, MultiGroupConfig
from multigroup.data import prepare_dataset
from multigroup.spec_multigroup import prior_offsets

from conftest import MIXED_GROUPS, encode, make_tokenizer, run_python, tiny_model

FIXTURE = Path(__file__).parent / "fixtures" / "model_0.3.0"
ROWS = [
    {"text": "the food was great", "score": "good", "topics": ["food"], "stars": 4.0},
    {"text": "slow rude staff", "score": "bad", "topics": ["service"], "stars": 1.0},
    {"text": "cheap", "score": "good", "topics": ["food", "price"], "stars": 5.0},
    {"text": "i love it", "score": "ok", "topics": [], "stars": None},
]


def test_prepare_dataset_sets_the_priors_of_a_new_head_once():
    model = tiny_model(MIXED_GROUPS)
    assert model.config.fit_priors is True
    prepare_dataset(Dataset.from_list(ROWS), make_tokenizer(), model.config)
    priors = {group["name"]: group["prior"] for group in model.config.groups}
    # label order: score [bad, ok, good], topics [food, service, price]; stars' mean over the 3 rows that have it
    assert priors == {"score": [0.25, 0.25, 0.5], "topics": [0.5, 0.25, 0.25], "stars": [pytest.approx(10 / 3)]}
    assert model.config.fit_priors is False
    prepare_dataset(Dataset.from_list(ROWS[:1]), make_tokenizer(), model.config)  # validation data: no change
    assert [group["prior"] for group in model.config.groups] == list(priors.values())


def test_data_a_model_is_scored_on_never_sets_its_priors():
    model = tiny_model(MIXED_GROUPS)  # a new head, saved before any training: evaluate must not fit it to the file
    prepare_dataset(Dataset.from_list(ROWS), make_tokenizer(), model.config, training=False)
    assert model.config.fit_priors is True and all("prior" not in group for group in model.config.groups)


def test_the_head_adds_the_prior_logits_a_hand_computation_gives():
    model = tiny_model(MIXED_GROUPS)
    inputs = encode(make_tokenizer())
    before = model(**inputs).logits
    for group, prior in zip(model.config.groups, ([0.2, 0.3, 0.5], [0.5, 0.001, 0.25], [3.0])):
        group["prior"] = prior
    after = model(**inputs).logits
    logs = [math.log(p) for p in (0.2, 0.3, 0.5)]
    expected = [v - sum(logs) / 3 for v in logs] + [0.0, math.log(0.001 / 0.999), math.log(1 / 3)] + [3.0]
    torch.testing.assert_close(after - before, torch.tensor(expected).expand_as(before), atol=1e-5, rtol=0)
    assert prior_offsets([{"name": "a", "type": "multilabel", "labels": ["x"]}]) is None  # no prior: no offset


def test_a_new_head_starts_at_the_label_frequencies():
    """Before training, the mean predicted probability of each multilabel label is near its frequency (0.5 without
    priors: the head starts at logit 0)."""
    model = tiny_model(MIXED_GROUPS)
    prepare_dataset(Dataset.from_list(ROWS), make_tokenizer(), model.config)
    probabilities = torch.sigmoid(model(**encode(make_tokenizer())).logits[:, 3:6]).mean(0)
    torch.testing.assert_close(probabilities, torch.tensor([0.5, 0.25, 0.25]), atol=0.05, rtol=0)


def test_the_first_training_step_fixes_the_priors():
    """A model trained on data encoded elsewhere never takes priors from the data it is evaluated on later."""
    model = tiny_model(MIXED_GROUPS).train()
    tokenizer = make_tokenizer()
    labels = torch.tensor([model.config.encode_labels(row) for row in ROWS[:2]])
    model(**encode(tokenizer, [row["text"] for row in ROWS[:2]]), labels=labels).loss.backward()
    assert model.config.fit_priors is False
    prepare_dataset(Dataset.from_list(ROWS), tokenizer, model.config)
    assert not any("prior" in group for group in model.config.groups)


def test_priors_and_the_flag_survive_save_and_load(tmp_path):
    model = tiny_model(MIXED_GROUPS)
    prepare_dataset(Dataset.from_list(ROWS), make_tokenizer(), model.config)
    inputs = encode(make_tokenizer())
    model.save_pretrained(tmp_path)
    loaded = AutoModelForMultiGroupClassification.from_pretrained(tmp_path).eval()
    assert loaded.config.fit_priors is False and loaded.config.groups == model.config.groups
    torch.testing.assert_close(loaded(**inputs).logits, model(**inputs).logits, atol=0, rtol=0)


def test_a_model_saved_by_0_3_loads_and_predicts_bit_identically(tmp_path):
    """`tests/fixtures/model_0.3.0` was saved by multigroup 0.3.0 (tiny BERT, three groups), with its logits."""
    expected = json.loads((FIXTURE / "logits.json").read_text())
    model = AutoModelForMultiGroupClassification.from_pretrained(FIXTURE).eval()
    assert model.config.fit_priors is False and not any("prior" in group for group in model.config.groups)
    inputs = encode(make_tokenizer("bert"), expected["texts"])
    with torch.no_grad():
        logits = model(**inputs).logits
    # Bit for bit against 0.3.0's own code (the fixture's remote-code files, run without multigroup) on this
    # machine; against the logits 0.3.0 wrote on another one, to float precision (CPUs differ in their kernels).
    torch.save(dict(inputs), tmp_path / "inputs.pt")
    code = (
        "import torch\nfrom transformers import AutoModel\n"
        f"model = AutoModel.from_pretrained({str(FIXTURE)!r}, trust_remote_code=True).eval()\n"
        "with torch.no_grad():\n"
        "    torch.save(model(**torch.load('inputs.pt')).logits, 'logits.pt')\n"
    )
    completed = run_python(code, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert torch.equal(logits, torch.load(tmp_path / "logits.pt"))
    np.testing.assert_allclose(logits.numpy(), np.array(expected["logits"], dtype=np.float32), rtol=0, atol=1e-4)
    rows = [{"text": text, "global_score": "S1", "emotions": ["E1"], "stars": 1.0} for text in expected["texts"]]
    prepare_dataset(Dataset.from_list(rows), make_tokenizer("bert"), model.config)  # evaluation data: no priors
    assert not any("prior" in group for group in model.config.groups)


@pytest.mark.parametrize(
    ("prior", "message"),
    [
        ([0.5, 0.5], r"Group `topics`: `prior` must be a list of 3 number\(s\), one frequency in \[0, 1\] per label"),
        ([0.5, 1.5, 0.1], r"`prior` must be a list of 3 number\(s\)"),
        ("0.5", r"`prior` must be a list of 3 number\(s\).*got '0.5'"),
    ],
)
def test_a_bad_prior_is_named(prior, message):
    groups = [dict(MIXED_GROUPS[1], prior=prior)]
    with pytest.raises(ValueError, match=message):
        MultiGroupConfig(groups=groups)


def test_fit_priors_must_be_a_bool():
    with pytest.raises(ValueError, match=r"`fit_priors` must be True or False, got 'yes'"):
        MultiGroupConfig(groups=MIXED_GROUPS, fit_priors="yes")
