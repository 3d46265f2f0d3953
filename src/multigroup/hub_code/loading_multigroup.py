"""Loading a model: what a config or weights saved by older multigroup mean, a sentence-transformers checkpoint's
pooling, and one line in place of transformers' load report.

This file is remote code: `save_pretrained` copies it next to the weights, so it imports only the standard library
and transformers.
"""

import json
import logging

from transformers.utils import logging as hf_logging

# What a `config.json` written before one of the configuration's own fields existed means: 0.1.0's head had no
# multiplier and one shared dense layer; a model saved by 0.1-0.3 has no priors to fit.
LEGACY_DEFAULTS = {"head_multiplier": 1.0, "per_group_dense": False, "fit_priors": False}
HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")
# The top layer's attribute holding each group's copy of it (`group_top_layer`), so their weights' names:
# `...layer.5.group_copies.0...`; a load that lacks them starts them as the top layer.
COPIES = "group_copies"


def sentence_transformers_pooling(path: str, hub_kwargs: dict) -> str | None:
    """`"mean"` or `"cls"` from a sentence-transformers checkpoint's `1_Pooling/config.json`; None without one."""
    from transformers.utils import cached_file

    found = cached_file(
        path, "1_Pooling/config.json", _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False, **hub_kwargs,
    )  # fmt: skip
    if found is None:
        return None
    with open(found, encoding="utf-8") as file:
        modes = json.load(file)
    if modes.get("pooling_mode_mean_tokens"):
        return "mean"
    return "cls" if modes.get("pooling_mode_cls_token") else None


# multigroup <= 0.2 named the head `head`, with `dense` and `out_proj` layers.
LEGACY_KEYS = {
    r"^head\.dense\.": "classifier.hidden.",
    r"^head\.out_proj\.": "classifier.out.",
    r"^head\.": "classifier.",
}
LEGACY = [[pattern] for pattern in LEGACY_KEYS]
_REPORTED = ("LOAD REPORT", "Some weights of")  # transformers 5's table, and transformers 4's two paragraphs
# A child of transformers' logger: it replaces transformers' own load report, and obeys its verbosity.
logger = hf_logging.get_logger("transformers.multigroup")


class load_report_hidden:
    """Hide transformers' own report of missing and unexpected weights while a model loads; if loading fails (a
    size mismatch: transformers raises "look at the above report"), the report is shown after all."""

    def __enter__(self):
        self.logger, self.hidden = logging.getLogger("transformers.modeling_utils"), []
        self.logger.addFilter(self.keep)

    def __exit__(self, exc_type, *exc):
        self.logger.removeFilter(self.keep)
        for record in self.hidden if exc_type is not None else []:
            self.logger.handle(record)

    def keep(self, record: logging.LogRecord) -> bool:
        if any(text in str(record.msg) for text in _REPORTED):
            self.hidden.append(record)
            return False
        return True


def report_loading(model, source, info: dict, saved: bool) -> None:
    missing, unused = sorted(info.get("missing_keys") or []), sorted(info.get("unexpected_keys") or [])
    resized = sorted(
        str(entry[0] if isinstance(entry, tuple) else entry) for entry in info.get("mismatched_keys") or []
    )
    if resized:  # only with ignore_mismatched_sizes=True: those weights are new, not the checkpoint's
        logger.warning(f"These weights of {source} had another shape and are randomly initialised: {resized}.")
    copies = [key for key in missing if f".{COPIES}." in key]  # each group's copy starts as the top layer
    new = [key for key in missing if key.startswith("classifier.")]
    missing = [key for key in missing if key not in new and key not in copies]
    if missing:
        logger.warning(f"These weights were not in {source} and are randomly initialised: {', '.join(missing)}.")
    if saved:
        if copies:
            logger.warning(f"Each group's new copy of the top layer starts as {source}'s top layer.")
        if new or unused:
            logger.warning(
                f"{source} does not match this model: missing {new or 'nothing'}, unused {unused or 'nothing'}."
            )
        return
    left_out = f"; left out the checkpoint's own {', '.join(unused)}" if unused else ""
    config = model.config
    logger.warning(
        f"New multi-group head for {config.group_names} on the `{config.encoder_type}` encoder of {source} (train it "
        f"before use){'; each group has a copy of its top layer' if config.group_top_layer else ''}{left_out}."
    )
