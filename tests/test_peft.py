"""PEFT LoRA with nothing else to know: the head trains with the adapters, the adapter saves and reloads, and the
merged model is a normal multigroup repo that loads through remote code and the pipeline."""

import json

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoModel
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from multigroup import AutoModelForMultiGroupClassification

from conftest import MIXED_GROUPS, TEXTS, WORDS, encode, make_tokenizer, run_python

peft = pytest.importorskip("peft")


@pytest.fixture
def base_checkpoint(tmp_path):
    torch.manual_seed(0)
    sizes = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)
    config = CONFIG_MAPPING["bert"](vocab_size=len(WORDS) + 5, max_position_embeddings=34, **sizes)
    AutoModel.from_config(config).save_pretrained(tmp_path / "base")
    return tmp_path / "base"


def test_lora_trains_the_head_saves_reloads_and_merges(base_checkpoint, tmp_path):
    base = AutoModelForMultiGroupClassification.from_pretrained(base_checkpoint, groups=MIXED_GROUPS)
    lora = peft.LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["query", "value"])
    model = peft.get_peft_model(base, lora)
    trainable = {name for name, param in model.named_parameters() if param.requires_grad}
    assert any(".classifier.modules_to_save." in name for name in trainable), "the head must train"
    assert {name.split(".")[-3] for name in trainable if "lora_" in name} == {"lora_A", "lora_B"}
    assert all("lora_" in name or ".classifier." in name for name in trainable)

    inputs = encode(make_tokenizer("bert"), TEXTS)
    labels = torch.tensor(
        [
            base.config.encode_labels(row)
            for row in [
                {"score": "good", "topics": ["food"], "stars": 4.5},
                {"score": "bad", "topics": ["service"], "stars": 1.0},
                {"score": "good", "topics": [], "stars": 5.0},
                {"score": "ok", "topics": ["price"], "stars": 3.0},
            ]
        ]  # fmt: skip
    )
    head_before = model.base_model.model.classifier.modules_to_save["default"].out.weight.detach().clone()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(3):
        model(**inputs, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert not torch.equal(head_before, model.base_model.model.classifier.modules_to_save["default"].out.weight)
    model.eval()
    with torch.no_grad():
        logits = model(**inputs).logits

    model.save_pretrained(tmp_path / "adapter")  # reads the base model's config, which has no groups
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    fresh = AutoModelForMultiGroupClassification.from_pretrained(base_checkpoint, groups=MIXED_GROUPS)
    reloaded = peft.PeftModel.from_pretrained(fresh, tmp_path / "adapter").eval()
    with torch.no_grad():
        assert torch.equal(reloaded(**inputs).logits, logits)

    merged = model.merge_and_unload()
    assert type(merged).__name__ == "BertForMultiGroupClassification"
    with torch.no_grad():
        merged_logits = merged(**inputs).logits
    torch.testing.assert_close(merged_logits, logits, atol=1e-5, rtol=1e-5)
    merged.save_pretrained(tmp_path / "merged")
    make_tokenizer("bert").save_pretrained(tmp_path / "merged")
    save_file({**inputs, "logits": merged_logits.contiguous()}, tmp_path / "reference.safetensors")

    code = """
import json, sys, torch
from safetensors.torch import load_file
from transformers import AutoModel, pipeline
ref = load_file("reference.safetensors")
model = AutoModel.from_pretrained("merged", trust_remote_code=True).eval()
with torch.no_grad():
    same = torch.equal(model(**{k: v for k, v in ref.items() if k != "logits"}).logits, ref["logits"])
clf = pipeline("multi-group-classification", model="merged", trust_remote_code=True)
print("RESULT" + json.dumps([same, clf("the food was great"), "multigroup" in sys.modules]))
"""
    completed = run_python(code, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    same, prediction, imported = json.loads(completed.stdout.split("RESULT")[-1])
    assert same and not imported
    assert list(prediction) == ["score", "topics", "stars"] and prediction["score"]["label"] in {"bad", "ok", "good"}


def test_build_optimizer_finds_the_head_inside_a_peft_model(base_checkpoint):
    from multigroup.training import build_optimizer

    base = AutoModelForMultiGroupClassification.from_pretrained(base_checkpoint, groups=MIXED_GROUPS)
    model = peft.get_peft_model(base, peft.LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["query"]))
    body, head = build_optimizer(model, 1e-3, head_learning_rate=3e-2).param_groups
    head_params = model.base_model.model.classifier.modules_to_save["default"].parameters()
    assert {id(p) for p in head["params"]} == {id(p) for p in head_params}
    assert head["lr"] == pytest.approx(3e-2 / base.config.head_multiplier) and body["lr"] == 1e-3
    assert all(p.requires_grad for p in body["params"]) and len(body["params"]) == 4  # 2 layers x (A, B)
