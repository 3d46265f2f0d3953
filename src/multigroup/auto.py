"""AutoModelForMultiGroupClassification: builds the multi-group model of a checkpoint's encoder family.

Importing this module registers `MultiGroupConfig` and this class with transformers' Auto classes (`AutoConfig`,
`AutoModel`, `AutoModelForSequenceClassification`), so that `AutoConfig`, `AutoTokenizer` and `AutoModel` load a
saved model folder with the installed code instead of asking to run the folder's copy (`trust_remote_code`).
`pipeline("multi-group-classification", model=model, tokenizer=tokenizer)` then takes the loaded model; given the
folder's path, transformers asks for `trust_remote_code` whatever is registered (its config.json names the
pipeline's code file).

What imports this module, and so registers:
- the first use of any name that `multigroup` exports but `EVALUATE_MODULE` and `__version__`:
  `from multigroup import MultiGroupConfig`, `multigroup.AutoModelForMultiGroupClassification`, ...;
- every `multigroup` command that loads a model;
- `import multigroup.auto`.
A bare `import multigroup` does not (it imports neither torch nor transformers, so that `multigroup --help` is
quick), nor does importing a submodule such as `multigroup.modeling_multigroup` alone. `tests/test_package.py`
tests that the import stays light and that a first use registers.
"""

from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

from .hub_code.configuration_multigroup import OWN_FIELDS, MultiGroupConfig
from .hub_code.loading_multigroup import HUB_KWARGS
from .hub_code.modeling_multigroup import model_class


class AutoModelForMultiGroupClassification:
    """Build the multi-group model that fits a checkpoint's encoder, as transformers' Auto classes do.

    Examples:

    ```python
    >>> from multigroup import AutoModelForMultiGroupClassification, MultiGroupConfig
    >>> config = MultiGroupConfig(
    ...     groups=[{"name": "topic", "type": "multilabel", "labels": ["food", "service"]}],
    ...     encoder_type="bert", vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
    ...     intermediate_size=37,
    ... )
    >>> type(AutoModelForMultiGroupClassification.from_config(config)).__name__
    'BertForMultiGroupClassification'

    ```

    `from_pretrained(path_or_id, groups=[...])` loads a plain encoder checkpoint (its weights, a new head), or a
    saved multi-group model (then `groups` is optional).
    """

    config_class = MultiGroupConfig  # lets transformers' Auto classes dispatch here

    def __init__(self):
        raise OSError("Use AutoModelForMultiGroupClassification.from_pretrained(...) or .from_config(config).")

    @classmethod
    def from_config(cls, config: MultiGroupConfig, **kwargs):
        return model_class(config.encoder_type)._from_config(config, **kwargs)

    _from_config = from_config  # the name transformers' Auto classes call

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        config = kwargs.pop("config", None)
        if config is None:
            config_kwargs = {key: kwargs.pop(key) for key in OWN_FIELDS if key in kwargs}
            hub_kwargs = {key: kwargs[key] for key in HUB_KWARGS if key in kwargs}
            config = MultiGroupConfig.from_pretrained(pretrained_model_name_or_path, **hub_kwargs, **config_kwargs)
        config.require_groups()
        return model_class(config.encoder_type).from_pretrained(
            pretrained_model_name_or_path, *model_args, config=config, **kwargs
        )


AutoConfig.register(MultiGroupConfig.model_type, MultiGroupConfig, exist_ok=True)
for _auto in (AutoModel, AutoModelForSequenceClassification):
    _auto.register(MultiGroupConfig, AutoModelForMultiGroupClassification, exist_ok=True)
