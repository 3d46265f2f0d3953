"""Tiny encoders and an offline tokenizer, built in memory: no test downloads anything."""

import atexit
import copy
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast
from transformers.utils import logging as hf_logging

from multigroup import AutoModelForMultiGroupClassification, MultiGroupConfig

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The Arrow files that tests' training files become go to a folder of this run's own, not the user's datasets cache
# (set before anything imports `datasets`, which reads it once); subprocesses inherit it.
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="multigroup-tests-datasets-")
atexit.register(shutil.rmtree, os.environ["HF_DATASETS_CACHE"], ignore_errors=True)
hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()

TINY_FAMILIES = ["bert", "camembert", "roberta", "xlm-roberta"]  # what tiny_config builds (helpers.FAMILIES: all)
ARTICLE_GROUPS = [
    {"name": "global_score", "type": "multiclass", "labels": ["S1", "S2", "S3", "S4", "S5"], "weight": 0.7},
    {
        "name": "emotions",
        "type": "multilabel",
        "labels": ["E1", "E2", "E3", "E4", "E5", "E6", "E7", "E8", "E10", "E11"],
        "weight": 4.0,
    },
    {"name": "causes", "type": "multilabel", "labels": [f"C{i}" for i in range(1, 13)], "weight": 4.0},
]
MIXED_GROUPS = [
    {"name": "score", "type": "multiclass", "labels": ["bad", "ok", "good"], "weight": 0.5},
    {"name": "topics", "type": "multilabel", "labels": ["food", "service", "price"], "threshold": [0.4, 0.5, 0.6]},
    {"name": "stars", "type": "regression", "weight": 2.0},
]
WORDS = (
    "the food was great terrible service slow rude staff price cheap expensive i love hate it place good bad very "
    "not and but waiter meal town hall office queue form online website help"
).split()
TEXTS = ["the food was great", "slow rude staff and bad service", "i love it", "very expensive but good"]
REPO_ROOT = Path(__file__).resolve().parents[1]


def make_tokenizer(family: str = "camembert") -> PreTrainedTokenizerFast:
    """A word-level tokenizer whose special-token ids match the family (BERT pads with 0, RoBERTa-family with 1)."""
    if family == "bert":
        cls, sep, pad, unk, mask = "[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"
        specials = [pad, unk, cls, sep, mask]
    else:
        cls, pad, sep, unk, mask = "<s>", "<pad>", "</s>", "<unk>", "<mask>"
        specials = [cls, pad, sep, unk, mask]
    vocab = {token: i for i, token in enumerate(specials + WORDS)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=unk))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}",
        pair=f"{cls} $A {sep} $B {sep}",
        special_tokens=[(cls, vocab[cls]), (sep, vocab[sep])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, cls_token=cls, sep_token=sep, pad_token=pad, unk_token=unk, mask_token=mask
    )


def tiny_config(groups=None, family: str = "camembert", **kwargs) -> MultiGroupConfig:
    """A RobertaModelTester-sized encoder: hidden 32, 2 layers."""
    sizes = dict(
        vocab_size=len(WORDS) + 5,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=34 if family == "bert" else 36,
        pad_token_id=0 if family == "bert" else 1,
    )
    sizes.update(kwargs)
    return MultiGroupConfig(groups=copy.deepcopy(groups or ARTICLE_GROUPS), encoder_type=family, **sizes)


def tiny_model(groups=None, family: str = "camembert", seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    return AutoModelForMultiGroupClassification.from_config(tiny_config(groups, family, **kwargs)).eval()


def encode(tokenizer, texts=TEXTS) -> dict:
    return dict(tokenizer(texts, padding=True, return_tensors="pt"))


def run_python(code: str, cwd: Path, env: dict | None = None):
    """Run code in a fresh interpreter that cannot import multigroup (as a user without it installed)."""
    import subprocess

    blocker = (
        "import sys, importlib.abc\n"
        "class _Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'multigroup' or name.startswith('multigroup.'):\n"
        "            raise ImportError('multigroup is blocked in this process')\n"
        "sys.meta_path.insert(0, _Block())\n"
    )
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", blocker + code], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same random state (torch, numpy, random), so a test that draws an input without
    its own generator still draws the same one on every run."""
    import random

    import numpy as np

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def _saved_article_model(tmp_path_factory):
    """The article's three groups on a tiny CamemBERT, saved once with its tokenizer."""
    path = tmp_path_factory.mktemp("article_model")
    model, tokenizer = tiny_model(), make_tokenizer()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """The mixed groups on a tiny CamemBERT, saved with its tokenizer: what `multigroup serve --model` is given."""
    path = tmp_path_factory.mktemp("served")
    tiny_model(MIXED_GROUPS).save_pretrained(path)
    make_tokenizer().save_pretrained(path)
    return path


@pytest.fixture
def saved_article_model(_saved_article_model, tmp_path):
    import shutil

    target = tmp_path / "model"
    shutil.copytree(_saved_article_model, target)
    return target
