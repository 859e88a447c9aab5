"""Files of named tensors plus JSON-like metadata, in msgpack: loading them never unpickles.

The layout is {"format": FORMAT, "meta": {...}, "tensors": {name: {"dtype", "shape",
"data"}}}. Only the numeric dtypes below are accepted, and every array is rebuilt with
numpy.frombuffer, so a crafted file can hold wrong numbers but cannot run code.
"""
from pathlib import Path
from typing import Any, Dict, Tuple, Union

import numpy
import srsly
import torch

FORMAT = "spacy_lmcrf.tensors.v1"
DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")


def tensors_to_bytes(tensors: Dict[str, torch.Tensor], meta: Dict[str, Any]) -> bytes:
    """Named tensors (on any device) and metadata (msgpack-able values) as bytes."""
    encoded = {}
    for name, tensor in tensors.items():
        array = tensor.detach().cpu().contiguous().numpy()
        encoded[name] = {"dtype": str(array.dtype), "shape": list(array.shape), "data": array.tobytes()}
    return srsly.msgpack_dumps({"format": FORMAT, "meta": meta, "tensors": encoded})


def tensors_from_bytes(data: bytes, source: str = "<bytes>") -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """The tensors (on CPU) and metadata written by tensors_to_bytes."""
    try:
        msg = srsly.msgpack_loads(data)
    except Exception as err:
        raise ValueError(f"{source} is not a spacy_lmcrf tensor file (msgpack): {err}") from None
    if not isinstance(msg, dict) or msg.get("format") != FORMAT:
        raise ValueError(f"{source} is not a spacy_lmcrf tensor file (format {FORMAT!r} expected)")
    tensors = {}
    for name, entry in msg["tensors"].items():
        dtype = entry.get("dtype")
        if dtype not in DTYPES:
            raise ValueError(f"{source}: tensor {name!r} has unsupported dtype {dtype!r}")
        shape = tuple(int(n) for n in entry["shape"])
        array = numpy.frombuffer(entry["data"], dtype=dtype)
        if array.size != int(numpy.prod(shape)):
            raise ValueError(f"{source}: tensor {name!r} holds {array.size} values, shape {shape} needs more or fewer")
        tensors[name] = torch.from_numpy(array.reshape(shape).copy())
    return tensors, msg["meta"]


def write_tensor_file(path: Union[str, Path], tensors: Dict[str, torch.Tensor], meta: Dict[str, Any]) -> None:
    """Write atomically: a crash while writing leaves the previous file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(tensors_to_bytes(tensors, meta))
    tmp.replace(path)


def read_tensor_file(path: Union[str, Path]) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    return tensors_from_bytes(path.read_bytes(), str(path))
