"""Every encoder family: from its own plain checkpoints, through a plain Trainer, to a folder that loads without
multigroup. Each tiny config is built in memory and saved the way the family's own classes save it."""

import json

import pytest
import torch
from datasets import Dataset
from safetensors.torch import load_file, save_file
from transformers import (
    AutoModel,
    AutoModelForSequenceClassification,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
)

from helpers import FAMILIES, save_plain, tokenizer_for
from multigroup import AutoModelForMultiGroupClassification
from multigroup.data import prepare_dataset

from conftest import MIXED_GROUPS, TEXTS, encode, make_tokenizer, run_python


@pytest.mark.parametrize("how", [AutoModel, AutoModelForSequenceClassification], ids=["AutoModel", "ForSeqCls"])
@pytest.mark.parametrize("family", FAMILIES)
def test_plain_checkpoint_gives_its_encoder_and_a_new_head(family, how, tmp_path):
    encoder = save_plain(family, how, tmp_path)
    model, info = AutoModelForMultiGroupClassification.from_pretrained(
        tmp_path, groups=MIXED_GROUPS, output_loading_info=True
    )
    loaded = dict(model.base_model.named_parameters())
    assert all(torch.equal(value, loaded[name]) for name, value in encoder.named_parameters() if name in loaded)
    assert {name for name, _ in encoder.named_parameters() if "pooler" not in name} <= set(loaded)
    assert info["missing_keys"] and all(key.startswith("classifier.") for key in info["missing_keys"])
    assert model.config.encoder_type == family and model.config.num_columns == 7
    # the checkpoint's own head is left out, never loaded into the new one (stored divided by the multiplier)
    assert model.classifier.out.weight.std() < 0.02


def test_the_families_train_with_a_plain_trainer_and_load_without_multigroup(tmp_path):
    rows = [
        {"text": "the food was great", "score": "good", "topics": ["food"], "stars": 4.5},
        {"text": "slow rude staff and bad service", "score": "bad", "topics": ["service"], "stars": 1.0},
        {"text": "very expensive but good", "score": "ok", "topics": ["price", "food"], "stars": 3.0},
    ] * 2
    for family in FAMILIES:
        save_plain(family, AutoModel, tmp_path / family / "plain")
        model = AutoModelForMultiGroupClassification.from_pretrained(tmp_path / family / "plain", groups=MIXED_GROUPS)
        tokenizer = tokenizer_for(family)
        dataset = prepare_dataset(Dataset.from_list(rows), tokenizer, model.config)
        args = TrainingArguments(
            str(tmp_path / family / "run"), per_device_train_batch_size=3, max_steps=2, learning_rate=1e-3,
            report_to=[], use_cpu=True, save_strategy="no", seed=0,
        )  # fmt: skip
        trainer = Trainer(
            model=model, args=args, train_dataset=dataset, data_collator=DataCollatorWithPadding(tokenizer)
        )
        before = model.classifier.out.weight.detach().clone()
        trainer.train()
        assert not torch.equal(before, model.classifier.out.weight), family
        saved = tmp_path / family / "saved"
        model.save_pretrained(saved)
        tokenizer.save_pretrained(saved)
        assert json.loads((saved / "config.json").read_text())["encoder_type"] == family
        inputs = encode(tokenizer, TEXTS)
        with torch.no_grad():
            logits = model.eval()(**inputs).logits
        save_file({**inputs, "logits": logits.contiguous()}, saved / "reference.safetensors")

    code = f"""
import json, sys, torch
from safetensors.torch import load_file
from transformers import AutoModel
same = {{}}
for family in {list(FAMILIES)!r}:
    ref = load_file(f"{{family}}/saved/reference.safetensors")
    model = AutoModel.from_pretrained(f"{{family}}/saved", trust_remote_code=True).eval()
    with torch.no_grad():
        logits = model(**{{k: v for k, v in ref.items() if k != "logits"}}).logits
    same[family] = [type(model).__name__, torch.equal(logits, ref["logits"])]
print("RESULT" + json.dumps([same, "multigroup" in sys.modules]))
"""
    completed = run_python(code, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    same, imported = json.loads(completed.stdout.split("RESULT")[-1])
    assert not imported
    assert {family: equal for family, (_, equal) in same.items()} == dict.fromkeys(FAMILIES, True)
    assert same["deberta-v2"][0] == "DebertaV2ForMultiGroupClassification"
    assert load_file(tmp_path / "bert" / "saved" / "model.safetensors").keys() >= {"classifier.out.weight"}


def test_token_type_ids_are_dropped_for_families_without_them_and_refused_when_set(tmp_path):
    save_plain("modernbert", AutoModel, tmp_path)
    model = AutoModelForMultiGroupClassification.from_pretrained(tmp_path, groups=MIXED_GROUPS).eval()
    inputs = encode(make_tokenizer(), TEXTS)
    inputs["token_type_ids"] = torch.zeros_like(inputs["input_ids"])  # as a BERT tokenizer would give them
    with torch.no_grad():
        with_zeros = model(**inputs).logits
        without = model(**{k: v for k, v in inputs.items() if k != "token_type_ids"}).logits
    assert torch.equal(with_zeros, without)
    with pytest.raises(ValueError, match="`modernbert` encoder has no token types"):
        model(**{**inputs, "token_type_ids": torch.ones_like(inputs["input_ids"])})


def test_an_unsupported_model_type_is_refused_by_name():
    from multigroup.modeling_multigroup import encoder_class

    with pytest.raises(ValueError, match="No multi-group model for encoder type `gpt2`.*encoder-only"):
        encoder_class("gpt2")


def test_loading_a_plain_checkpoint_says_in_one_line_that_the_head_is_new(tmp_path):
    import logging

    from transformers.utils import logging as hf_logging

    save_plain("roberta", AutoModelForSequenceClassification, tmp_path)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    root = logging.getLogger("transformers")
    root.addHandler(handler)
    hf_logging.set_verbosity_warning()
    try:
        AutoModelForMultiGroupClassification.from_pretrained(tmp_path, groups=MIXED_GROUPS)
    finally:
        hf_logging.set_verbosity_error()
        root.removeHandler(handler)
    messages = [record.getMessage() for record in records if record.levelno >= logging.WARNING]
    assert len(messages) == 1 and "LOAD REPORT" not in messages[0], messages
    assert "New multi-group head for ['score', 'topics', 'stars'] on the `roberta` encoder" in messages[0]
    assert "left out the checkpoint's own classifier.dense.bias" in messages[0]


def test_a_subclass_keeps_itself_and_a_resized_head_is_reported(tmp_path):
    import logging

    from transformers.utils import logging as hf_logging

    from multigroup.modeling_multigroup import model_class

    class Mine(model_class("roberta")):
        pass

    save_plain("roberta", AutoModel, tmp_path / "plain")
    model = Mine.from_pretrained(tmp_path / "plain", groups=MIXED_GROUPS)
    assert type(model) is Mine
    model.save_pretrained(tmp_path / "saved")
    other = [{"name": "score", "type": "multiclass", "labels": ["a", "b"]}]
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("transformers").addHandler(handler)
    hf_logging.set_verbosity_warning()
    try:  # another head: a size mismatch, and transformers' report is shown, not hidden
        with pytest.raises(RuntimeError, match="above report"):
            AutoModelForMultiGroupClassification.from_pretrained(tmp_path / "saved", groups=other)
        assert any("LOAD REPORT" in record.getMessage() for record in records)
        records.clear()
        AutoModelForMultiGroupClassification.from_pretrained(
            tmp_path / "saved", groups=other, ignore_mismatched_sizes=True
        )
        assert any("had another shape and are randomly initialised" in record.getMessage() for record in records)
    finally:
        hf_logging.set_verbosity_error()
        logging.getLogger("transformers").removeHandler(handler)
