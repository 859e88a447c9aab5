"""Files of named tensors plus JSON-like metadata, in msgpack: loading them never unpickles.

The layout is {"format": FORMAT, "meta": {...}, "tensors": {name: {"dtype", "shape",
"data"}}, "sha256": hex digest}. Only the numeric dtypes below are accepted, and every
array is rebuilt with numpy.frombuffer, so a crafted file can hold wrong numbers but
cannot run code. Reading trusts nothing it reads: every tensor's declared dtype and shape
are checked against the bytes actually present before anything is allocated, and the
sha256 over the metadata and the tensors (written since the key was added; older files
without it still load) refuses damaged files instead of handing back wrong numbers.
Every failure is a ValueError that names the file.

A model built from the metadata's sizes must be checked against the tensors before it is
built (a few hundred bytes of metadata can ask for terabytes): load_checked_module builds it
on torch's meta device first, where building allocates nothing, and compares.
"""

import hashlib
import math
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple, Type, TypeVar, Union

import numpy
import srsly
import torch

FORMAT = "spacy_lmcrf.tensors.v1"
DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")
CHECKSUM = "sha256"
Tensors = Dict[str, torch.Tensor]


def tensors_to_bytes(tensors: Tensors, meta: Dict[str, Any]) -> bytes:
    """Named tensors (on any device) and metadata (msgpack-able values) as bytes."""
    encoded = {}
    for name, tensor in tensors.items():
        array = tensor.detach().cpu().contiguous().numpy()
        encoded[name] = {
            "dtype": str(array.dtype),
            "shape": list(array.shape),
            "data": array.tobytes(),
        }
    # The digest covers the metadata as a reader will see it (after a msgpack round trip).
    digest = _digest(srsly.msgpack_loads(srsly.msgpack_dumps(meta)), encoded)
    msg = {"format": FORMAT, "meta": meta, "tensors": encoded, CHECKSUM: digest}
    return srsly.msgpack_dumps(msg)


def tensors_from_bytes(data: bytes, source: str = "<bytes>") -> Tuple[Tensors, Dict[str, Any]]:
    """The tensors (on CPU) and metadata written by tensors_to_bytes.

    data (bytes): the file's contents.
    source (str): what to call them in errors (the file's path).
    RETURNS (Tuple[Dict[str, torch.Tensor], Dict[str, Any]]): the tensors and the metadata.
    Raises ValueError, naming source, for anything but an intact tensor file.
    """
    msg = _unpack(data, source)
    entries = msg["tensors"]
    for name, entry in entries.items():
        _check_entry(name, entry, source)
    if CHECKSUM in msg:
        expected = msg[CHECKSUM]
        if not isinstance(expected, str) or _digest(msg["meta"], entries) != expected:
            raise ValueError(
                f"{source} is damaged: its sha256 checksum does not match its contents "
                f"({len(data)} bytes); the file was changed or corrupted after it was written"
            )
    tensors = {}
    for name, entry in entries.items():
        array = numpy.frombuffer(entry["data"], dtype=entry["dtype"])
        tensors[name] = torch.from_numpy(array.reshape(tuple(entry["shape"])).copy())
    return tensors, msg["meta"]


def write_tensor_file(path: Union[str, Path], tensors: Tensors, meta: Dict[str, Any]) -> None:
    """Write atomically: a crash while writing leaves the previous file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(tensors_to_bytes(tensors, meta))
    tmp.replace(path)


def read_tensor_file(path: Union[str, Path]) -> Tuple[Tensors, Dict[str, Any]]:
    """The tensors (on CPU) and metadata of the file at path (see tensors_from_bytes)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    return tensors_from_bytes(path.read_bytes(), str(path))


ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)


def load_checked_module(
    build: Callable[[], ModuleT], tensors: Tensors, source: str, prefix: str = ""
) -> ModuleT:
    """The module build() returns, with the weights tensors holds, checked first: a module
    built from a file's metadata must not be allocated before its sizes are known to match
    the tensors (a few hundred bytes of metadata can ask for terabytes).

    build (Callable[[], torch.nn.Module]): builds the module from the file's metadata.
    tensors (Dict[str, torch.Tensor]): the file's tensors; only the names under prefix
        are the module's state dict (prefix removed).
    source (str): the file's path, for errors.
    RETURNS (torch.nn.Module): the module, its weights loaded.
    Raises ValueError, naming source and what disagrees.
    """
    state = {name[len(prefix) :]: t for name, t in tensors.items() if name.startswith(prefix)}
    check_module_tensors(build, state, source, prefix)
    module = build()
    module.load_state_dict(state)
    return module


SavedT = TypeVar("SavedT", bound="SavedInTensorFile")


class SavedInTensorFile(torch.nn.Module):
    """A module saved as one tensor file: its state dict and meta(), rebuilt from the
    metadata by from_meta() and checked against the tensors before it is built. The
    pretrained LMs (BiCharLM, BiWordLM) define meta() and from_meta(); saving and loading
    are these methods."""

    training_info: Dict[str, Any]

    def meta(self, **training: Any) -> Dict[str, Any]:
        """The metadata from_meta() rebuilds the module from; `training` is provenance."""
        raise NotImplementedError

    @classmethod
    def from_meta(cls: Type[SavedT], meta: Dict[str, Any], source: str = "<meta>") -> SavedT:
        """An untrained module as meta describes it. Raises ValueError, naming source."""
        raise NotImplementedError

    def save(self, path: Union[str, Path], **training: Any) -> None:
        """Write the module to path; `training` (numbers, strings) is kept as provenance."""
        write_tensor_file(path, self.state_dict(), self.meta(**training))

    @classmethod
    def from_tensors(
        cls: Type[SavedT],
        tensors: Tensors,
        meta: Dict[str, Any],
        source: str,
        prefix: str = "",
    ) -> SavedT:
        """The module meta describes, with the weights in tensors (the names under prefix),
        its sizes checked against the tensors' shapes before it is built. Raises
        ValueError, naming source and what disagrees."""
        return load_checked_module(lambda: cls.from_meta(meta, source), tensors, source, prefix)

    @classmethod
    def load(cls: Type[SavedT], path: Union[str, Path]) -> SavedT:
        """A module saved by save(), its training provenance in training_info. Raises
        ValueError, naming the file, if it is not one or is truncated or damaged."""
        tensors, meta = read_tensor_file(path)
        module = cls.from_tensors(tensors, meta, str(path))
        module.training_info = meta.get("training", {})
        return module


def check_module_tensors(
    build: Callable[[], torch.nn.Module], state: Tensors, source: str, prefix: str = ""
) -> None:
    """Check that the module build() returns would take state's names and shapes, before it
    is built for real: build() runs on torch's meta device, where nothing is allocated.
    prefix is only for the names in errors. Raises ValueError, naming source."""
    try:
        with torch.device("meta"):
            expected = {name: tuple(t.shape) for name, t in build().state_dict().items()}
    except (TypeError, RuntimeError, OverflowError) as err:
        raise ValueError(f"{source}: its metadata describes no buildable model: {err}") from None
    found = {name: tuple(t.shape) for name, t in state.items()}
    missing = [prefix + n for n in sorted(set(expected) - set(found))]
    unexpected = [prefix + n for n in sorted(set(found) - set(expected))]
    if missing or unexpected:
        raise ValueError(
            f"{source}: the tensors do not match the model its metadata describes: "
            f"missing {missing}, unexpected {unexpected}"
        )
    for name, shape in expected.items():
        if found[name] != shape:
            raise ValueError(
                f"{source}: tensor {prefix + name!r} has shape {found[name]}, but the sizes in "
                f"the file's metadata make it {shape}: the metadata or the tensors are damaged"
            )


def check_meta(meta: Any, kind: str, what: str, source: str) -> Dict[str, Any]:
    """meta, checked to be a map whose "kind" is kind (what: its name in errors)."""
    if not isinstance(meta, dict):
        raise ValueError(f"{source}: its metadata is {type(meta).__name__}, not a map")
    if meta.get("kind") != kind:
        raise ValueError(f"{source} holds a {meta.get('kind')!r} model, not {what} ({kind!r})")
    return meta


def meta_int(meta: Dict[str, Any], key: str, source: str, minimum: int = 1) -> int:
    """meta[key], checked to be a whole number >= minimum."""
    value = meta.get(key)
    if type(value) is not int or value < minimum:
        raise ValueError(
            f"{source}: its metadata's {key!r} is {value!r}, not a whole number >= {minimum}"
        )
    return value


def meta_fraction(meta: Dict[str, Any], key: str, source: str) -> float:
    """meta[key], checked to be a number in [0, 1)."""
    value: Any = meta.get(key)  # unchecked JSON until the test below
    if type(value) not in (int, float) or not 0 <= value < 1:
        raise ValueError(f"{source}: its metadata's {key!r} is {value!r}, not a number in [0, 1)")
    return value


def meta_strings(meta: Dict[str, Any], key: str, source: str) -> List[str]:
    """meta[key], checked to be a list of strings."""
    value = meta.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{source}: its metadata's {key!r} is not a list of strings")
    return value


def _unpack(data: bytes, source: str) -> Dict[str, Any]:
    """The file's top-level map, its structure checked (not yet its tensors' entries)."""
    try:
        msg = srsly.msgpack_loads(data)
    except MemoryError:
        raise
    except Exception as err:
        raise ValueError(
            f"{source} is not a spacy_lmcrf tensor file, or is truncated or damaged "
            f"({len(data)} bytes; msgpack: {type(err).__name__}: {err})"
        ) from None
    if not isinstance(msg, dict) or msg.get("format") != FORMAT:
        raise ValueError(f"{source} is not a spacy_lmcrf tensor file (format {FORMAT!r} expected)")
    for key in ("meta", "tensors"):
        if not isinstance(msg.get(key), dict):
            raise ValueError(
                f"{source} is damaged: its {key!r} is {type(msg.get(key)).__name__}, not a map"
            )
    return msg


def _check_entry(name: Any, entry: Any, source: str) -> None:
    """Check one tensor's entry: its dtype, its shape, and that its data holds exactly the
    bytes they need (Python ints: a declared shape cannot overflow)."""
    if not isinstance(name, str) or not isinstance(entry, dict):
        raise ValueError(f"{source} is damaged: tensor {name!r} is not a named map")
    for key, kind in (("dtype", str), ("shape", list), ("data", bytes)):
        if not isinstance(entry.get(key), kind):
            raise ValueError(
                f"{source} is damaged: tensor {name!r} has no {key!r} ({kind.__name__}) "
                f"but {type(entry.get(key)).__name__}"
            )
    dtype, shape, data = entry["dtype"], entry["shape"], entry["data"]
    if dtype not in DTYPES:
        raise ValueError(f"{source}: tensor {name!r} has unsupported dtype {dtype!r}")
    if any(type(n) is not int or n < 0 for n in shape):
        raise ValueError(f"{source} is damaged: tensor {name!r} has an invalid shape {shape}")
    needed = math.prod(shape) * numpy.dtype(dtype).itemsize
    if needed != len(data):
        raise ValueError(
            f"{source} is truncated or damaged: tensor {name!r} declares {dtype} shape "
            f"{tuple(shape)}, which needs {needed:,} bytes, but the file holds {len(data):,}"
        )


def _digest(meta: Dict[str, Any], entries: Dict[str, Dict[str, Any]]) -> str:
    """sha256 over the metadata and every tensor's name, dtype, shape and data, in order."""
    digest = hashlib.sha256(srsly.msgpack_dumps(meta))
    for name, entry in entries.items():
        digest.update(srsly.msgpack_dumps([name, entry["dtype"], list(entry["shape"])]))
        digest.update(entry["data"])
    return digest.hexdigest()
