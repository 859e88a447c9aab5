"""Wrapping our torch modules for Thinc: one place for the wrapper's settings and for
turning padded per-segment states back into one array per doc."""
from typing import Any, Callable, List, Sequence, Tuple

import torch
from thinc.api import ArgsKwargs, Model, PyTorchShim, PyTorchWrapper_v3, torch2xp, xp2torch
from thinc.types import Floats2d

from ..segments import Segment
from .padding import pad_segments, unpad_segments
from .torch_io import deserialize_torch_module, serialize_torch_module


def wrap_torch_module(module: torch.nn.Module, convert_inputs: Callable, convert_outputs: Callable) -> Model:
    """A PyTorchWrapper_v3 that saves the module's state dict and loads it without
    unpickling (spacy_lmcrf.ml.torch_io), resizing the module to the saved shapes first,
    and that predicts without switching the module back to training mode (ThreadSafeShim)."""
    wrapper = PyTorchWrapper_v3(
        module,
        convert_inputs=convert_inputs,
        convert_outputs=convert_outputs,
        serialize_model=serialize_torch_module,
        deserialize_model=deserialize_torch_module,
    )
    shim = wrapper.shims[0]
    wrapper.shims[0] = ThreadSafeShim(
        shim._model,
        device=shim.device,
        serialize_model=serialize_torch_module,
        deserialize_model=deserialize_torch_module,
    )
    return wrapper


class ThreadSafeShim(PyTorchShim):
    """A PyTorchShim whose predict may run in several threads at once.

    Thinc's shim puts the module in eval() for predict and back in train() after it: a
    thread finishing its predict turns dropout on inside another thread's forward pass,
    which then returns wrong output without an error. Here only begin_update switches
    the module to training mode; predict switches it to eval mode, which is idempotent,
    so concurrent predicts all see eval mode. (Training while another thread predicts
    on the same pipeline is not supported, as in spaCy.)
    """

    def predict(self, inputs: ArgsKwargs) -> Any:
        if self._model.training:
            self._model.eval()
        with torch.no_grad():
            with torch.autocast(device_type="cuda", enabled=self._mixed_precision):
                return self._model(*inputs.args, **inputs.kwargs)


def states_to_docs(
    model: Model, states: torch.Tensor, segments: Sequence[Segment], doc_lengths: List[int]
) -> Tuple[List[Floats2d], Callable[[List[Floats2d]], ArgsKwargs]]:
    """(S, T, W) states over padded segments -> one (n_tokens, W) array per doc, and the
    conversion of their gradients back into the module's backward call."""
    padded = torch2xp(states.detach())
    outputs = unpad_segments(model.ops, padded, segments, doc_lengths)

    def convert_gradients(d_outputs: List[Floats2d]) -> ArgsKwargs:
        d_padded = pad_segments(model.ops, d_outputs, segments, padded.shape)
        return ArgsKwargs(args=(states,), kwargs={"grad_tensors": (xp2torch(d_padded, device=states.device),)})

    return outputs, convert_gradients


def convert_batch_outputs(model: Model, inputs_outputs, is_train: bool):
    """convert_outputs for modules whose input is one batch object with .segments and
    .doc_lengths (spacy_lmcrf.ml.word_features.WordBatch and the like)."""
    batch, states = inputs_outputs
    return states_to_docs(model, states, batch.segments, batch.doc_lengths)
