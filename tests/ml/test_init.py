"""spacy_lmcrf.ml.modules.init: each scheme gives its documented ranges and zero biases."""

import math

import pytest
import torch
from torch import nn

from spacy_lmcrf.ml.modules.init import (
    init_embedding_uniform_,
    init_gru_,
    init_linear_,
    init_lm_decoder_,
    init_lm_embedding_,
    init_lstm_,
)


def glorot_bound(fan_in: int, fan_out: int) -> float:
    return math.sqrt(6.0 / (fan_in + fan_out))


def test_init_lstm_glorot_weights_zero_biases_forget_gate_one():
    torch.manual_seed(0)
    lstm = nn.LSTM(5, 3, num_layers=2, bidirectional=True)
    assert init_lstm_(lstm) is lstm
    for name, param in lstm.named_parameters():
        if name.startswith("weight"):
            fan_out, fan_in = param.shape
            assert param.abs().max() <= glorot_bound(fan_in, fan_out)
        elif name.startswith("bias_ih"):
            assert torch.equal(param[3:6], torch.ones(3))
            assert not param[:3].any() and not param[6:].any()
        else:
            assert not param.any()


def test_init_gru_glorot_weights_zero_biases():
    torch.manual_seed(0)
    gru = nn.GRU(5, 3, bidirectional=True)
    assert init_gru_(gru) is gru
    for name, param in gru.named_parameters():
        if name.startswith("weight"):
            fan_out, fan_in = param.shape
            assert param.abs().max() <= glorot_bound(fan_in, fan_out)
        else:
            assert not param.any()


@pytest.mark.parametrize("bias", [True, False])
def test_init_linear_glorot_weight_zero_bias(bias):
    torch.manual_seed(0)
    linear = nn.Linear(40, 30, bias=bias)
    assert init_linear_(linear) is linear
    bound = glorot_bound(40, 30)
    assert 0.9 * bound < linear.weight.abs().max() <= bound
    if bias:
        assert not linear.bias.any()


def test_init_linear_conv1d():
    torch.manual_seed(0)
    conv = nn.Conv1d(8, 6, 3)
    init_linear_(conv)
    assert conv.weight.abs().max() <= glorot_bound(8 * 3, 6 * 3)
    assert not conv.bias.any()


def test_init_embedding_uniform_scale_sqrt_3_over_dim():
    torch.manual_seed(0)
    weight = torch.empty(500, 12)
    assert init_embedding_uniform_(weight) is weight
    scale = math.sqrt(3.0 / 12)
    assert 0.95 * scale < weight.abs().max() <= scale


def test_init_embedding_uniform_parameter_keeps_grad():
    embed = nn.Embedding(10, 4)
    init_embedding_uniform_(embed.weight)
    assert embed.weight.requires_grad and embed.weight.grad_fn is None


def test_init_lm_uniform_point_one():
    torch.manual_seed(0)
    embed = init_lm_embedding_(nn.Embedding(300, 8))
    decoder = init_lm_decoder_(nn.Linear(8, 300))
    for weight in (embed.weight, decoder.weight):
        assert 0.095 < weight.abs().max() <= 0.1
    assert not decoder.bias.any()
