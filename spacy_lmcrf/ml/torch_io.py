"""Saving and loading wrapped torch modules without unpickling arbitrary objects."""
from io import BytesIO
from typing import Any

import torch


def serialize_torch_module(module: torch.nn.Module) -> bytes:
    """The module's state dict as bytes."""
    buffer = BytesIO()
    torch.save(module.state_dict(), buffer)
    return buffer.getvalue()


def deserialize_torch_module(module: Any, state_bytes: bytes, device: "torch.device") -> Any:
    """Load a state dict saved by serialize_torch_module into module.

    Only tensors and plain containers are unpickled (weights_only=True). Modules whose
    sizes are set at initialization (vocabularies, label sets) define
    resize_to_state_dict and are resized to the saved shapes before loading.
    """
    state = torch.load(BytesIO(state_bytes), map_location=device, weights_only=True)
    if hasattr(module, "resize_to_state_dict"):
        module.resize_to_state_dict(state)
    module.load_state_dict(state)
    module.to(device)
    return module
