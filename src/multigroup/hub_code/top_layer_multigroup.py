"""Each group's own copy of the encoder's top layer (`MultiGroupConfig.group_top_layer`).

The encoder's last layer stays where it is (its weights keep their checkpoint names) and serves the first group; it
holds a copy of itself for every other group (`group_copies`), each starting as the checkpoint's layer. It runs
once per group, each on its own copy of the layer's input (in training the gradient balancer's copies, so the
groups' gradients into the shared layers are balanced there), and returns the groups' outputs stacked: (groups,
batch, sequence, hidden). The encoder's own steps after its layers (a final norm) apply to each alike; the head
pools each group's states for that group.

This file is remote code: `save_pretrained` copies it next to the weights, so it imports only the standard library,
torch, transformers and its siblings.
"""

import copy
import functools
from collections.abc import Callable

import torch
from torch import nn

from .loading_multigroup import COPIES  # `group_copies`: the weights' names


def top_layer(encoder: nn.Module, num_layers: int) -> nn.Module:
    """The encoder's last layer: the last entry of its one list of `num_layers` layers."""
    lists = [
        module
        for name, module in encoder.named_modules()
        if isinstance(module, nn.ModuleList) and len(module) == num_layers and not name.endswith(f".{COPIES}")
    ]
    if len(lists) != 1:
        shared = " (ALBERT shares one layer between all)" if "Albert" in type(encoder).__name__ else ""
        raise ValueError(
            f"`group_top_layer` needs an encoder whose {num_layers} layers are one list; {type(encoder).__name__} "
            f"has {len(lists)}{shared}: leave `group_top_layer` off for this encoder."
        )
    return lists[0][-1]


class GroupTopLayer:
    """Mixed into the top layer's own class: runs it for the first group and `group_copies` for the others.

    The copies run by their `forward`, inside this layer's call: gradient checkpointing, device hooks and
    transformers' recording of hidden states see one layer, as they would without copies (hooks on a copy itself
    never run; its attention modules' do)."""

    group_copies: nn.ModuleList
    expand: Callable[[torch.Tensor], torch.Tensor] | None = None  # the head's own copies, set by the model's forward

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs):
        if hidden_states.dim() != 3:
            raise ValueError(
                "`group_top_layer` needs padded batches (batch, sequence, hidden), got hidden states of shape "
                f"{tuple(hidden_states.shape)} (an unpadding attention such as ModernBERT's flash attention): load "
                "the model with attn_implementation='sdpa'."
            )
        states = self.expand(hidden_states) if self.expand is not None else hidden_states
        inputs = states.unbind(0) if states.dim() == 4 else (states,) * (len(self.group_copies) + 1)
        outputs = [super().forward(inputs[0], *args, **kwargs)]
        copies = zip(self.group_copies, inputs[1:], strict=True)
        outputs += [layer.forward(state, *args, **kwargs) for layer, state in copies]
        if not isinstance(outputs[0], tuple):  # the layer and its copies on one device (`_no_split_modules`)
            return torch.stack(outputs)
        # The families return the hidden states first, or with DistilBERT's attention weights before them.
        at = next(i for i, value in enumerate(outputs[0]) if value.shape == hidden_states.shape)
        stacked = torch.stack([output[at] for output in outputs])
        return (*outputs[0][:at], stacked, *outputs[0][at + 1 :])

    def __reduce_ex__(self, protocol):
        # The mixed class has no importable name: pickled as made from the layer's own class, its state set after.
        return _new_group_top, (type(self).__bases__[1],), self.__getstate__()


def _new_group_top(layer_class: type) -> nn.Module:
    mixed = _with_group_copies(layer_class)
    return mixed.__new__(mixed)


@functools.cache
def _with_group_copies(layer_class: type) -> type:
    return type(group_top_name(layer_class.__name__), (GroupTopLayer, layer_class), {"__module__": __name__})


def group_top_name(layer_class_name: str) -> str:
    """The top layer's class name once it holds copies (`GroupTopBertLayer`): the model keeps it whole on a device
    like the family's own layers (`_no_split_modules`)."""
    return f"GroupTop{layer_class_name}"


def add_group_copies(layer: nn.Module, num_groups: int, config) -> None:
    """Give `layer` a copy of itself for each group after the first, and run it once per group from now on. The
    copies read the model's `config` itself (its attention implementation, ...), not copies of it."""
    copies = [copy.deepcopy(layer, {id(config): config}) for _ in range(num_groups - 1)]
    layer.__class__ = _with_group_copies(type(layer))
    layer.group_copies = nn.ModuleList(copies)


@torch.no_grad()
def start_copies_as_layer(layer: nn.Module, which: set[int]) -> None:
    """The copies numbered in `which` take the layer's own weights (a new copy starts as the checkpoint's layer)."""
    own = {name: value for name, value in layer.state_dict().items() if not name.startswith(f"{COPIES}.")}
    for i in which:
        layer.group_copies[i].load_state_dict(own)


def missing_copies(missing_keys: list[str]) -> set[int]:
    """Which copies (by number) a load found no weights for."""
    return {int(key.split(f".{COPIES}.")[1].split(".")[0]) for key in missing_keys if f".{COPIES}." in key}
