"""Each group's own copy of the encoder's top layer (`MultiGroupConfig.group_top_layer`).

The encoder's last layer stays where it is (its weights keep their checkpoint names) and serves the first group; it
holds a copy of itself for every other group (`group_copies`), each starting as the checkpoint's layer. It runs
once per group, each on its own copy of its input (balanced in training, as the pooled features are), and returns
the groups' outputs stacked: (groups, batch, sequence, hidden). The encoder's own steps after its layers (a final
norm) apply to each alike; the head pools each group's states for that group.

This file is remote code: `save_pretrained` copies it next to the weights, so it imports only the standard library,
torch and transformers.
"""

import copy
import functools
from collections.abc import Callable

import torch
from torch import nn


def top_layer(encoder: nn.Module, num_layers: int) -> nn.Module:
    """The encoder's last layer: the last entry of its one list of `num_layers` layers."""
    lists = [
        module
        for name, module in encoder.named_modules()
        if isinstance(module, nn.ModuleList) and len(module) == num_layers and not name.endswith(".group_copies")
    ]
    if len(lists) != 1:
        raise ValueError(
            f"`group_top_layer` needs an encoder whose {num_layers} layers are one list; {type(encoder).__name__} "
            f"has {len(lists)} (ALBERT shares one layer between all): leave `group_top_layer` off for this encoder."
        )
    return lists[0][-1]


class GroupTopLayer:
    """Mixed into the top layer's own class: runs it for the first group and `group_copies` for the others."""

    group_copies: nn.ModuleList
    expand: Callable[[torch.Tensor], torch.Tensor] | None = None  # each group's own copy of the input (the head's)

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
        outputs += [layer(state, *args, **kwargs) for layer, state in zip(self.group_copies, inputs[1:], strict=True)]
        if not isinstance(outputs[0], tuple):
            return torch.stack(outputs)
        # The families return the hidden states first, or with DistilBERT's attention weights before them.
        at = next(i for i, value in enumerate(outputs[0]) if value.shape == hidden_states.shape)
        stacked = torch.stack([output[at] for output in outputs])
        return (*outputs[0][:at], stacked, *outputs[0][at + 1 :])


@functools.cache
def _with_group_copies(layer_class: type) -> type:
    return type(f"GroupTop{layer_class.__name__}", (GroupTopLayer, layer_class), {"__module__": __name__})


def add_group_copies(layer: nn.Module, num_groups: int, expand: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Give `layer` a copy of itself for each group after the first, and run it once per group from now on."""
    copies = [copy.deepcopy(layer) for _ in range(num_groups - 1)]
    layer.__class__ = _with_group_copies(type(layer))
    layer.group_copies = nn.ModuleList(copies)
    layer.expand = expand


@torch.no_grad()
def start_copies_as_layer(layer: nn.Module) -> None:
    """Every group's copy takes the layer's own weights (a new model's copies start as the checkpoint's layer)."""
    own = {name: value for name, value in layer.state_dict().items() if not name.startswith("group_copies.")}
    for group_copy in layer.group_copies:
        group_copy.load_state_dict(own)
