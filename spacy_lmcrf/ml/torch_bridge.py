"""The one bridge between Thinc and our torch modules.

- wrap_torch_module: the Thinc wrapper of every torch module of ours (ThreadSafeShim: predict
  never switches a shared module back to training mode);
- padding: per-doc token rows <-> padded per-segment batches, and back for gradients
  (pad_segments, unpad_segments, states_to_docs, convert_batch_outputs);
- saving and loading: a module's state dict as checked bytes (serialize_torch_module,
  deserialize_torch_module).

Saving and loading: Saving and loading wrapped torch modules without unpickling arbitrary objects.

The bytes are MAGIC, the sha256 of the rest, then torch.save's state dict: torch's own
reader does not check its archive's checksums, so a damaged blob would otherwise load
wrong numbers. Bytes written before the checksum was added (plain torch.save output)
still load, unchecked.
"""

import hashlib
from io import BytesIO
from typing import Any, Callable, Dict, List, Sequence, Tuple

import torch
from thinc.api import ArgsKwargs, Model, PyTorchShim, PyTorchWrapper_v3, torch2xp, xp2torch
from thinc.types import Floats2d, Floats3d

from .featurize.segments import Segment

MAGIC = b"spacy_lmcrf.torch.sha256\n"
ZIP_MAGIC = b"PK\x03\x04"  # how torch.save's output (a zip archive) begins
DIGEST_SIZE = hashlib.sha256().digest_size


def serialize_torch_module(module: torch.nn.Module) -> bytes:
    """The module's state dict as bytes, behind its checksum."""
    buffer = BytesIO()
    torch.save(module.state_dict(), buffer)
    data = buffer.getvalue()
    return MAGIC + hashlib.sha256(data).digest() + data


def deserialize_torch_module(module: Any, state_bytes: bytes, device: "torch.device") -> Any:
    """Load a state dict saved by serialize_torch_module into module.

    Only tensors and plain containers are unpickled (weights_only=True). Modules whose
    sizes are set at initialization (vocabularies, label sets) define
    resize_to_state_dict and are resized to the saved shapes before loading.
    Raises ValueError when the bytes are truncated or damaged, or do not fit the module
    (the caller knows the file and adds it).
    """
    state = load_state_dict_bytes(state_bytes, device)
    try:
        if hasattr(module, "resize_to_state_dict"):
            module.resize_to_state_dict(state)
        module.load_state_dict(state)
    except (KeyError, IndexError, ValueError, RuntimeError) as err:
        if isinstance(err, torch.cuda.OutOfMemoryError):
            raise
        raise ValueError(
            f"the saved torch weights do not fit {type(module).__name__}: they are damaged "
            f"or belong to another model ({type(err).__name__}: {err})"
        ) from None
    module.to(device)
    return module


def load_state_dict_bytes(state_bytes: bytes, device: "torch.device") -> Dict[str, torch.Tensor]:
    """The state dict in bytes written by serialize_torch_module, its checksum checked.

    Raises ValueError, saying how many bytes were read, when they are truncated or damaged.
    """
    size = len(state_bytes)
    if state_bytes.startswith(MAGIC):
        start = len(MAGIC) + DIGEST_SIZE
        data = state_bytes[start:]
        if size < start or hashlib.sha256(data).digest() != state_bytes[len(MAGIC) : start]:
            raise ValueError(
                f"the saved torch weights are damaged or truncated: their sha256 checksum "
                f"does not match ({size:,} bytes)"
            )
    elif state_bytes.startswith(ZIP_MAGIC):
        data = state_bytes
    else:
        raise ValueError(
            f"the saved torch weights are damaged or truncated: they begin with neither a "
            f"checksum nor a torch archive ({size:,} bytes)"
        )
    try:
        state = torch.load(BytesIO(data), map_location=device, weights_only=True)
    except (MemoryError, torch.cuda.OutOfMemoryError):
        raise
    except Exception as err:
        raise ValueError(
            f"the saved torch weights are damaged or truncated ({size:,} bytes; "
            f"torch.load: {type(err).__name__}: {err})"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
        raise ValueError(f"the saved torch weights ({size:,} bytes) are no state dict of tensors")
    return state


def unpad_segments(
    ops, padded: Floats3d, segments: Sequence[Segment], doc_lengths: List[int]
) -> List[Floats2d]:
    """(S, T, W) segment rows -> one (n_tokens, W) array per doc."""
    outputs = [ops.alloc2f(n, padded.shape[-1]) for n in doc_lengths]
    for s, (doc_i, start, end) in enumerate(segments):
        outputs[doc_i][start:end] = padded[s, : end - start]
    return outputs


def pad_segments(
    ops, per_doc: List[Floats2d], segments: Sequence[Segment], shape: Tuple[int, int, int]
) -> Floats3d:
    """One (n_tokens, W) array per doc -> (S, T, W) segment rows, zero padded."""
    padded = ops.alloc3f(*shape)
    for s, (doc_i, start, end) in enumerate(segments):
        padded[s, : end - start] = per_doc[doc_i][start:end]
    return padded


def wrap_torch_module(
    module: torch.nn.Module, convert_inputs: Callable, convert_outputs: Callable
) -> Model:
    """A PyTorchWrapper_v3 that saves the module's state dict and loads it without
    unpickling (serialize_torch_module), resizing the module to the saved shapes first,
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
        return ArgsKwargs(
            args=(states,), kwargs={"grad_tensors": (xp2torch(d_padded, device=states.device),)}
        )

    return outputs, convert_gradients


def convert_batch_outputs(model: Model, inputs_outputs, is_train: bool):
    """convert_outputs for modules whose input is one batch object with .segments and
    .doc_lengths (spacy_lmcrf.ml.featurize.words.WordBatch and the like)."""
    batch, states = inputs_outputs
    return states_to_docs(model, states, batch.segments, batch.doc_lengths)
