"""Initialisation shared by the recurrent layers."""

from torch import nn


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
