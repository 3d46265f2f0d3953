"""What several test modules share beyond conftest.py's tiny models: plain checkpoints of every encoder family, a
plain Trainer, `multigroup serve` in a subprocess, the transformers 4 interpreters, JSONL files.

Imported by the tests as `from helpers import ...` (tests/ is on `sys.path`, as for `conftest`); fixtures stay in
conftest.py."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import torch
from datasets import Dataset
from transformers import AutoModel, DataCollatorWithPadding, Trainer, TrainingArguments
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from multigroup.data import prepare_dataset

from conftest import REPO_ROOT, WORDS, make_tokenizer

# --- plain checkpoints: every encoder family, its tiny config built in memory and saved the family's own way

SIZES = dict(
    vocab_size=len(WORDS) + 5, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
    max_position_embeddings=36, pad_token_id=1,
)  # fmt: skip
ROBERTA_IDS = dict(bos_token_id=0, eos_token_id=2, cls_token_id=0, sep_token_id=2)  # the tokenizer's <s> and </s>
FAMILIES = {
    "bert": dict(SIZES, pad_token_id=0),
    "camembert": SIZES,
    "roberta": SIZES,
    "xlm-roberta": SIZES,
    "distilbert": dict(
        vocab_size=SIZES["vocab_size"],
        dim=32,
        n_layers=2,
        n_heads=4,
        hidden_dim=37,
        max_position_embeddings=36,
        pad_token_id=0,
    ),  # fmt: skip
    "electra": dict(SIZES, embedding_size=16),
    "albert": dict(SIZES, embedding_size=16),
    "mpnet": SIZES,
    # DeBERTa-v3's attention: relative positions only, both disentangled terms, shared keys
    "deberta-v2": dict(
        SIZES,
        relative_attention=True,
        position_biased_input=False,
        pos_att_type=["p2c", "c2p"],
        position_buckets=8,
        norm_rel_ebd="layer_norm",
        share_att_key=True,
    ),  # fmt: skip
    # three layers: global, local (sliding window), global
    "modernbert": dict(SIZES, num_hidden_layers=3, local_attention=8, **ROBERTA_IDS),
    "eurobert": dict(SIZES, num_key_value_heads=2, mask_token_id=4, **ROBERTA_IDS),
}
PAD_ZERO = {"bert", "distilbert"}  # the others use the RoBERTa-style tokenizer: <s>=0, <pad>=1, </s>=2


def tokenizer_for(family):
    return make_tokenizer("bert" if family in PAD_ZERO else "camembert")


def save_plain(family, how, path):
    """A plain checkpoint: the bare encoder (`AutoModel`) or a fine-tuned classifier with its own head."""
    torch.manual_seed(0)
    plain = how.from_config(CONFIG_MAPPING[family](**FAMILIES[family]))
    plain.save_pretrained(path)
    return plain if how is AutoModel else plain.base_model


# --- a plain transformers Trainer on the article's groups

TRAINER_ROWS = [
    {"text": "the food was great", "global_score": "S5", "emotions": ["E1"], "causes": []},
    {"text": "slow rude staff and bad service", "global_score": "S1", "emotions": ["E2", "E3"], "causes": ["C1"]},
    {"text": "i love it", "global_score": "S4", "emotions": ["E1"], "causes": []},
    {"text": "very expensive but good", "global_score": "S3", "emotions": [], "causes": ["C2", "C3"]},
] * 4


def make_trainer(tmp_path, model, batch_size=4, accumulation=1, epochs=1, lr=0.0, compute_metrics=None, **kwargs):
    """A plain Trainer on TRAINER_ROWS; with `compute_metrics`, TRAINER_ROWS are also the evaluation set."""
    tokenizer = make_tokenizer()
    dataset = prepare_dataset(Dataset.from_list(TRAINER_ROWS), tokenizer, model.config)
    args = TrainingArguments(
        str(tmp_path / "out"),
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation,
        num_train_epochs=epochs,
        learning_rate=lr,
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        seed=0,
        **{"save_strategy": "no", **kwargs},
    )
    return Trainer(
        model=model,
        args=args,
        train_dataset=dataset,
        eval_dataset=dataset if compute_metrics else None,
        compute_metrics=compute_metrics,
        data_collator=DataCollatorWithPadding(tokenizer),
    )


# --- `multigroup serve` in a subprocess, called over HTTP


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(port: int, path: str, body=None, method: str | None = None, timeout: float = 60) -> tuple[int, object]:
    """`(status, parsed JSON body)`; `body` is sent as JSON, or as is when it is bytes."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


class Server:
    """`multigroup serve ARGS` in a subprocess on a free port; `stop()` sends SIGTERM and returns the log."""

    def __init__(self, *args: str):
        self.port = free_port()
        command = [sys.executable, "-m", "multigroup.cli", "serve", *args, "--port", str(self.port)]
        self.log = tempfile.TemporaryFile("w+")  # not a pipe: one line per request would fill it and stall the server
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if call(self.port, "/health", timeout=5)[0] == 200:
                    return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"the server did not become healthy:\n{self.stop()}")

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)
        self.log.seek(0)
        return self.log.read()


# --- other interpreters: the transformers 4 environments that `make old-transformers` makes

OLD_PYTHONS = sorted(REPO_ROOT.glob(".venv-transformers-*/bin/python"))


def run_isolated(python, code, cwd, *args):
    """`python -I -c code args` in `cwd`, offline and without the user's site-packages."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "PYTHONNOUSERSITE": "1"}
    command = [str(python), "-I", "-c", code, *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


# --- files


def write_jsonl(path, rows) -> str:
    """`rows` as a JSONL file at `path`; returns the path as a string, as a command line takes it."""
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)
