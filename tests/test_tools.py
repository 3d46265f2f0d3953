"""The everyday transformers tools keep working on multigroup models: gradient checkpointing, bf16 training with a
plain Trainer, bf16 loading through remote code, eager and SDPA attention, resized token embeddings, torch.compile.

The tiny models use `initializer_range=0.2` so that their logits spread over about +-1: a tolerance then says
something (with the default 0.02 every logit is about 0.01, and the rows barely differ)."""

import copy
import json

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoModel
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from helpers import FAMILIES, make_trainer, tokenizer_for
from multigroup import AutoModelForMultiGroupClassification

from conftest import MIXED_GROUPS, TEXTS, encode, make_tokenizer, run_python, tiny_model

SPREAD = {"initializer_range": 0.2}
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "classifier_dropout": 0.0}
MIXED_LABELS = [
    {"score": "good", "topics": ["food"], "stars": 4.5},
    {"score": "bad", "topics": ["service"], "stars": 1.0},
    {"score": "good", "topics": [], "stars": 5.0},
    {"score": "ok", "topics": ["price", "food"], "stars": 3.0},
]


def logits_of(model, inputs):
    with torch.no_grad():
        return model.eval()(**inputs).logits


def first_linear(model):
    return next(module for module in model.base_model.modules() if isinstance(module, torch.nn.Linear))


@pytest.mark.filterwarnings("ignore:`gradient_checkpointing_enable` is deprecated:FutureWarning")
def test_gradient_checkpointing_gives_the_same_loss_and_gradients():
    model = tiny_model(MIXED_GROUPS, family="bert", **NO_DROPOUT).train()
    inputs = encode(make_tokenizer("bert"))
    labels = torch.tensor([model.config.encode_labels(row) for row in MIXED_LABELS])
    plain, checkpointed = copy.deepcopy(model), copy.deepcopy(model)  # the balancer's running norms start alike
    checkpointed.gradient_checkpointing_enable()
    calls = []
    first_linear(checkpointed).register_forward_hook(lambda *_: calls.append(1))
    losses = []
    for run in (plain, checkpointed):
        loss = run(**inputs, labels=labels).loss
        loss.backward()
        losses.append(loss.detach())
    assert len(calls) == 2  # the layer ran again in backward: checkpointing was on
    torch.testing.assert_close(losses[0], losses[1])
    grads = {name: p.grad for name, p in checkpointed.named_parameters()}
    for name, parameter in plain.named_parameters():
        assert parameter.grad is not None and grads[name] is not None, name
        torch.testing.assert_close(parameter.grad, grads[name], rtol=1e-5, atol=1e-7, msg=name)
    torch.testing.assert_close(plain.classifier.balancer.norms, checkpointed.classifier.balancer.norms)


def test_trainer_trains_in_bf16_on_cpu(tmp_path):
    model = tiny_model().train()
    trainer = make_trainer(tmp_path, model, lr=5e-3, max_steps=3, bf16=True)
    dtypes = []
    first_linear(model).register_forward_hook(lambda module, args, output: dtypes.append(output.dtype))
    watched = {"head": model.classifier.out.weight, "encoder": model.get_input_embeddings().weight}
    before = {name: p.detach().clone() for name, p in watched.items()}
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    assert set(dtypes) == {torch.bfloat16}  # the forward ran under bf16 autocast
    assert all(p.dtype == torch.float32 for p in model.parameters())  # with float32 master weights
    assert all(not torch.equal(before[name], p) for name, p in watched.items())


def test_bf16_loading_through_remote_code(tmp_path):
    model, tokenizer = tiny_model(**SPREAD), make_tokenizer()
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    inputs = encode(tokenizer)
    reference = logits_of(model, inputs)
    assert reference.std() > 0.3  # the tolerance below is small next to the logits
    save_file({**inputs, "logits": reference.contiguous()}, tmp_path / "reference.safetensors")
    code = """
import json, sys, torch
from safetensors.torch import load_file
from transformers import AutoModel
ref = load_file("reference.safetensors")
model = AutoModel.from_pretrained("model", trust_remote_code=True, dtype=torch.bfloat16).eval()
with torch.no_grad():
    logits = model(**{k: v for k, v in ref.items() if k != "logits"}).logits
print("RESULT" + json.dumps({
    "dtypes": sorted({str(p.dtype) for p in model.parameters()}), "logits": str(logits.dtype),
    "diff": (logits.float() - ref["logits"]).abs().max().item(), "imported": "multigroup" in sys.modules,
}))
"""
    completed = run_python(code, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.split("RESULT")[-1])
    assert result["dtypes"] == ["torch.bfloat16"] and result["logits"] == "torch.bfloat16"
    assert result["diff"] < 0.1 and not result["imported"]


@pytest.mark.parametrize("family", ["bert", "modernbert"])
def test_eager_and_sdpa_attention_give_the_same_logits(family, tmp_path):
    if family == "modernbert":  # from a plain checkpoint, as a user starts
        AutoModel.from_config(CONFIG_MAPPING[family](**FAMILIES[family], **SPREAD)).save_pretrained(tmp_path / "plain")
        model = AutoModelForMultiGroupClassification.from_pretrained(tmp_path / "plain", groups=MIXED_GROUPS)
    else:
        model = tiny_model(MIXED_GROUPS, family=family, **SPREAD)
    model.save_pretrained(tmp_path / "saved")
    inputs = encode(tokenizer_for(family))
    assert not inputs["attention_mask"].all()  # padded
    logits = {}
    for implementation in ("eager", "sdpa"):
        loaded = AutoModelForMultiGroupClassification.from_pretrained(
            tmp_path / "saved", attn_implementation=implementation
        )
        assert loaded.config._attn_implementation == implementation
        logits[implementation] = logits_of(loaded, inputs)
    assert logits["eager"].std() > 0.1
    torch.testing.assert_close(logits["eager"], logits["sdpa"], rtol=0, atol=1e-5)


def test_resize_token_embeddings_runs_saves_and_reloads(tmp_path):
    model = tiny_model(MIXED_GROUPS, **SPREAD)
    n = model.config.vocab_size
    old_rows = model.get_input_embeddings().weight.detach().clone()
    model.resize_token_embeddings(n + 8)
    assert model.get_input_embeddings().weight.shape == (n + 8, model.config.hidden_size)
    assert model.config.vocab_size == n + 8
    assert torch.equal(model.get_input_embeddings().weight[:n], old_rows)
    inputs = encode(make_tokenizer())
    inputs["input_ids"][0, 1] = n + 7  # one of the new tokens
    logits = logits_of(model, inputs)
    assert logits.shape == (len(TEXTS), 7) and torch.isfinite(logits).all()
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForMultiGroupClassification.from_pretrained(tmp_path)
    assert reloaded.config.vocab_size == n + 8 and reloaded.get_input_embeddings().weight.shape[0] == n + 8
    assert torch.equal(logits_of(reloaded, inputs), logits)


@pytest.mark.slow  # 17-26 s of compiling on 2 cores (5 s once the inductor cache is warm)
def test_torch_compile_gives_the_eager_logits():
    model = tiny_model(MIXED_GROUPS, **SPREAD)
    inputs = encode(make_tokenizer())
    expected = logits_of(model, inputs)
    compiled = logits_of(torch.compile(model), inputs)
    torch.testing.assert_close(compiled, expected, rtol=0, atol=1e-5)
