"""The weight initialisations of the torch modules, one named function per scheme.

Each initialises its argument in place, with the same random draws in the same order
as torch's own nn.init functions it calls, and returns it.
"""

from typing import TypeVar, Union

import torch
from torch import nn

Layer = TypeVar("Layer", bound=Union[nn.Linear, nn.Conv1d])

LM_UNIFORM = 0.1


def init_lstm_(lstm: nn.LSTM) -> nn.LSTM:
    """Glorot-uniform weights, zero biases, and forget-gate bias 1 (Jozefowicz et al. 2015)."""
    for name, param in lstm.named_parameters():
        if name.startswith("weight"):
            nn.init.xavier_uniform_(param)
        elif name.startswith("bias_ih"):
            nn.init.zeros_(param)
            hidden = param.shape[0] // 4
            param.data[hidden : 2 * hidden] = 1.0
        elif name.startswith("bias"):
            nn.init.zeros_(param)
    return lstm


def init_gru_(gru: nn.GRU) -> nn.GRU:
    """Glorot-uniform weights and zero biases (Glorot & Bengio 2010)."""
    for name, param in gru.named_parameters():
        if name.startswith("weight"):
            nn.init.xavier_uniform_(param)
        else:
            nn.init.zeros_(param)
    return gru


def init_linear_(layer: Layer) -> Layer:
    """Glorot-uniform weight and zero bias, if any (Glorot & Bengio 2010); also for a Conv1d."""
    nn.init.xavier_uniform_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


def init_embedding_uniform_(weight: torch.Tensor) -> torch.Tensor:
    """Uniform in +-sqrt(3 / dim) (Lample et al. 2016; Ma & Hovy 2016), dim the row width."""
    scale = (3.0 / weight.shape[-1]) ** 0.5
    return nn.init.uniform_(weight, -scale, scale)


def init_lm_embedding_(embed: nn.Embedding) -> nn.Embedding:
    """Uniform(+-0.1) rows, as the LSTM LMs of Zaremba et al. 2014 (and Flair's LMs)."""
    nn.init.uniform_(embed.weight, -LM_UNIFORM, LM_UNIFORM)
    return embed


def init_lm_decoder_(decoder: nn.Linear) -> nn.Linear:
    """Uniform(+-0.1) weight and zero bias, as the LSTM LMs of Zaremba et al. 2014 (and Flair's)."""
    nn.init.uniform_(decoder.weight, -LM_UNIFORM, LM_UNIFORM)
    nn.init.zeros_(decoder.bias)
    return decoder
