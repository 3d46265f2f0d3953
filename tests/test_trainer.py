import pytest
import torch

from helpers import make_trainer

from conftest import ARTICLE_GROUPS, tiny_model


def test_plain_trainer_trains_the_article_groups(tmp_path):
    # 0.3's head (no priors, 30x): from logit 0 the loss has far to fall; priors start it near its floor already
    model = tiny_model(ARTICLE_GROUPS, head_multiplier=30.0, fit_priors=False).train()
    trainer = make_trainer(tmp_path, model, epochs=8, lr=5e-3)
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 32
    assert sum(losses[-4:]) < 0.5 * sum(losses[:4])


def test_gradient_accumulation_keeps_the_loss_scale(tmp_path):
    """Trainer multiplies the loss by the accumulation steps when forward takes **kwargs; ours must not."""
    # no priors: the first loss is then an uninformed prediction's, checked below
    no_dropout = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "fit_priors": False}
    full = make_trainer(tmp_path / "a", tiny_model(ARTICLE_GROUPS, **no_dropout), batch_size=4, max_steps=1)
    accumulated = make_trainer(
        tmp_path / "b", tiny_model(ARTICLE_GROUPS, **no_dropout), batch_size=2, accumulation=2, max_steps=1
    )
    assert accumulated.model_accepts_loss_kwargs is False
    full.train()
    accumulated.train()
    first = full.state.log_history[0]["loss"]
    assert accumulated.state.log_history[0]["loss"] == pytest.approx(first, rel=1e-5)
    assert first == pytest.approx(0.7 * torch.log(torch.tensor(5.0)).item() + 8 * 0.693, rel=0.1)


def test_trainer_evaluate_returns_only_logits_to_metrics(tmp_path):
    seen = {}

    def compute_metrics(prediction):
        seen["shape"] = prediction.predictions.shape
        return {"columns": prediction.predictions.shape[1]}

    model = tiny_model(ARTICLE_GROUPS)
    trainer = make_trainer(tmp_path, model, compute_metrics=compute_metrics, per_device_eval_batch_size=8)
    metrics = trainer.evaluate()
    assert seen["shape"] == (16, 27) and metrics["eval_columns"] == 27 and metrics["eval_loss"] > 0
