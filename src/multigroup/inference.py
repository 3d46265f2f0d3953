"""Batched inference to logits, texts sorted by length so that each batch pads little."""

from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm


@torch.inference_mode()
def batched_logits(
    model, tokenizer, texts: Sequence[str], batch_size: int = 32, max_length: int | None = None, progress: bool = False
) -> np.ndarray:
    """The `(len(texts), num_columns)` logits, in input order."""
    model.eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    logits = np.zeros((len(texts), model.config.num_columns), dtype=np.float32)
    device = next(model.parameters()).device
    max_length = max_length or min(tokenizer.model_max_length, model.config.max_tokens)
    for start in tqdm(range(0, len(texts), batch_size), disable=not progress, desc="batches"):
        indices = order[start : start + batch_size]
        batch = tokenizer(
            [texts[i] for i in indices], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        ).to(device)
        logits[indices] = model(**batch).logits.float().cpu().numpy()
    return logits
