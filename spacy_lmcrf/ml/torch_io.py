"""Saving and loading wrapped torch modules without unpickling arbitrary objects.

The bytes are MAGIC, the sha256 of the rest, then torch.save's state dict: torch's own
reader does not check its archive's checksums, so a damaged blob would otherwise load
wrong numbers. Bytes written before the checksum was added (plain torch.save output)
still load, unchecked.
"""
import hashlib
from io import BytesIO
from typing import Any, Dict

import torch

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
        if size < start or hashlib.sha256(data).digest() != state_bytes[len(MAGIC):start]:
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
