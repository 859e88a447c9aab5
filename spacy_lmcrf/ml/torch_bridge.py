"""The one bridge between Thinc and our torch modules.

- torch_tok2vec: the Thinc shell of every tok2vec whose work is one torch module: docs are
  featurized into a SegmentBatch, run through the module, and its (S, T, W) states come
  back as one row per token (and gradients the other way), with the empty-batch, frozen
  and not-initialized cases handled once;
- wrap_torch_module: the Thinc wrapper of every torch module of ours (ThreadSafeShim: predict
  never switches a shared module back to training mode), torch_module its accessor, and
  convert_segment_inputs / convert_segment_outputs the one converter pair of the shell;
- padding: per-doc token rows <-> padded per-segment batches (pad_segments, unpad_segments);
- saving and loading: a module's state dict as checked bytes (serialize_torch_module,
  deserialize_torch_module), without unpickling arbitrary objects.

The bytes are MAGIC, the sha256 of the rest, then torch.save's state dict: torch's own
reader does not check its archive's checksums, so a damaged blob would otherwise load
wrong numbers. Bytes written before the checksum was added (plain torch.save output)
still load, unchecked.
"""

import hashlib
from dataclasses import dataclass
from functools import partial
from io import BytesIO
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, cast

import numpy
import torch
from spacy.tokens import Doc
from thinc.api import ArgsKwargs, Model, PyTorchShim, PyTorchWrapper_v3, torch2xp, xp2torch
from thinc.types import Floats2d, Floats3d

from .featurize.segments import Segment, SegmentBatch

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
    shim = cast(PyTorchShim, wrapper.shims[0])
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


def torch_shim(model: Model, ref: str = "encoder") -> PyTorchShim:
    """The shim of a wrapper (wrap_torch_module), or of the wrapper a model holds under ref."""
    wrapper = model.get_ref(ref) if model.has_ref(ref) else model
    return cast(PyTorchShim, wrapper.shims[0])


def torch_module(model: Model, ref: str = "encoder") -> Any:
    """The torch module of a wrapper, or of the wrapper a model holds under ref."""
    return torch_shim(model, ref)._model


def torch_device(model: Model, ref: str = "encoder") -> torch.device:
    """The device of the torch module of a wrapper, or of the wrapper under ref."""
    return torch_shim(model, ref).device


def batch_tensors(batch: SegmentBatch, device: torch.device) -> Dict[str, Any]:
    """The batch's module_inputs as tensors: on device, or on the CPU for *_cpu."""
    kwargs: Dict[str, Any] = {}
    for name, value in batch.module_inputs().items():
        if isinstance(value, numpy.ndarray):
            tensor = torch.from_numpy(value)
            kwargs[name] = tensor if name.endswith("_cpu") else tensor.to(device, non_blocking=True)
        else:
            kwargs[name] = value
    return kwargs


class SegmentInputs(NamedTuple):
    """What a torch tok2vec's wrapper reads: the featurized batch, and the rows of its
    features model (one (n_tokens, W) array per doc) or None."""

    batch: SegmentBatch
    features: Optional[List[Floats2d]]


@dataclass(frozen=True)
class FeaturesInput:
    """Another model's rows, padded into the batch's segments and given to the torch
    module as one keyword argument: a listener of a shared encoder, the layer below a
    context encoder, TagLM's LM embeddings.

    ref (str): the model's ref name.
    arg (str): the module's keyword argument.
    trainable (bool): backpropagate into the model; False computes no gradient for it.
    first (bool): the model comes before the torch module in the layers (the order of
        the nodes a saved pipeline was written in).
    """

    ref: str
    arg: str
    trainable: bool = True
    first: bool = True


@dataclass(frozen=True)
class TorchTok2VecSpec:
    """How torch_tok2vec's forward pass runs (see torch_tok2vec)."""

    title: str
    featurize: Callable[[Model, List[Doc], bool], SegmentBatch]
    ready: Optional[Callable[[Model], bool]]
    missing: str
    trainable: Optional[Callable[[Model], bool]]
    module_ref: str
    features: Optional[FeaturesInput]


def torch_tok2vec(
    name: str,
    module: torch.nn.Module,
    featurize: Callable[[Model, List[Doc], bool], SegmentBatch],
    *,
    init: Callable,
    attrs: Dict[str, Any],
    title: str,
    width: Optional[int] = None,
    ready: Optional[Callable[[Model], bool]] = None,
    missing: str = "vocabulary",
    trainable: Optional[Callable[[Model], bool]] = None,
    features: Optional[Tuple[Model, FeaturesInput]] = None,
    module_ref: str = "encoder",
    forward: Optional[Callable] = None,
) -> Model[List[Doc], List[Floats2d]]:
    """A tok2vec whose work is one torch module over padded segments.

    name (str): the model's name (saved pipelines check it: keep it stable).
    module (torch.nn.Module): returns (S, T, W) states, or (states, loss) for a module with
        an auxiliary loss (LM-LSTM-CRF's co-trained LM), from featurize's module_inputs.
    featurize (Callable[[Model, List[Doc], bool], SegmentBatch]): (model, docs, is_train)
        -> the padded batch.
    init (Callable): the model's init (vocabularies, sizes).
    attrs (Dict[str, Any]): the model's attrs.
    title (str): the architecture's name in error messages, e.g. "WordCharTok2Vec".
    width (Optional[int]): the output width; default module.width.
    ready (Optional[Callable[[Model], bool]]): whether the model is initialized; a forward
        pass before raises, saying the `missing` part ("vocabulary", "LMs") is not there.
    trainable (Optional[Callable[[Model], bool]]): whether training updates the module;
        default: whether any of its parameters requires a gradient. When it does not (and
        no trainable features need a gradient), training runs it as in prediction.
    features (Optional[Tuple[Model, FeaturesInput]]): a model whose rows are padded into
        the segments and given to the module (see FeaturesInput).
    module_ref (str): the ref of the wrapped module.
    forward (Optional[Callable]): (model, docs, is_train, *, spec) -> (rows, backprop);
        default tok2vec_forward. A module with a loss reads encode's loss in its own.
    RETURNS (Model[List[Doc], List[Floats2d]]): the tok2vec.
    """
    features_as = features[1] if features is not None else None
    wrapper = wrap_torch_module(
        module,
        partial(convert_segment_inputs, features=features_as),
        convert_segment_outputs,
    )
    layers: List[Model] = [wrapper]
    refs: Dict[str, Optional[Model]] = {module_ref: wrapper}
    if features is not None:
        features_model, features_as = features
        layers.insert(0 if features_as.first else 1, features_model)
        refs[features_as.ref] = features_model
    spec = TorchTok2VecSpec(
        title=title,
        featurize=featurize,
        ready=ready,
        missing=missing,
        trainable=trainable,
        module_ref=module_ref,
        features=features_as,
    )
    return Model(
        name,
        partial(forward or tok2vec_forward, spec=spec),
        init=init,
        layers=layers,
        refs=refs,
        dims={"nO": cast(int, module.width) if width is None else width},
        attrs=attrs,
    )


def tok2vec_forward(
    model: Model, docs: List[Doc], is_train: bool, *, spec: TorchTok2VecSpec
) -> Tuple[List[Floats2d], Callable]:
    """A torch tok2vec's rows: encode's, for a module without an auxiliary loss."""
    (rows, _), backprop = encode(model, docs, is_train, spec=spec)
    return rows, backprop


def encode(
    model: Model, docs: List[Doc], is_train: bool, *, spec: TorchTok2VecSpec
) -> Tuple[Tuple[List[Floats2d], Optional[float]], Callable]:
    """Featurize docs, run the torch module, and return one (n_tokens, W) array per doc
    with the module's auxiliary loss (None without one), and the backprop callback
    backprop(d_rows, d_loss=0.0): d_loss is the gradient of the training objective with
    respect to that loss (its weight)."""
    if spec.ready is not None and not spec.ready(model):
        raise ValueError(
            f"{spec.title} has no {spec.missing} yet: initialize the pipeline "
            "(nlp.initialize(get_examples)) before using it."
        )
    features = spec.features
    rows, backprop_rows = None, None
    if features is not None:
        rows, backprop_rows = model.get_ref(features.ref)(docs, is_train)
    grad_to_features = is_train and features is not None and features.trainable

    def backprop_features(d_rows: Optional[List[Floats2d]]) -> Any:
        if not grad_to_features:
            return []
        assert rows is not None and backprop_rows is not None
        if d_rows is None:  # the module read the features as constants
            d_rows = [model.ops.alloc2f(*r.shape) for r in rows]
        return backprop_rows(d_rows)

    batch = spec.featurize(model, docs, is_train)
    if batch.n_segments == 0:
        outputs = [model.ops.alloc2f(0, model.get_dim("nO")) for _ in docs]
        return (outputs, None), lambda d_outputs, d_loss=0.0: backprop_features(rows)
    wrapper = model.get_ref(spec.module_ref)
    inputs = SegmentInputs(batch, rows)
    if not is_train or not (grad_to_features or trains_module(model, spec)):
        output = wrapper.predict(inputs)
        return output, lambda d_outputs, d_loss=0.0: backprop_features(None)
    output, backprop_module = wrapper.begin_update(inputs)

    def backprop(d_outputs: List[Floats2d], d_loss: float = 0.0) -> Any:
        return backprop_features(backprop_module((d_outputs, d_loss)))

    return output, backprop


def trains_module(model: Model, spec: TorchTok2VecSpec) -> bool:
    """Whether training updates the torch module (asked in training only)."""
    if spec.trainable is not None:
        return spec.trainable(model)
    return any(p.requires_grad for p in torch_module(model, spec.module_ref).parameters())


def convert_segment_inputs(
    model: Model, inputs: SegmentInputs, is_train: bool, *, features: Optional[FeaturesInput]
) -> Tuple[ArgsKwargs, Callable[[ArgsKwargs], Optional[List[Floats2d]]]]:
    """The batch's tensors as the module's keyword arguments, and the features' rows
    padded into its segments (as features.arg); the gradient comes back per doc."""
    batch = inputs.batch
    device = torch_device(model)
    kwargs = batch_tensors(batch, device)
    if features is None or inputs.features is None:
        return ArgsKwargs(args=(), kwargs=kwargs), lambda d_inputs: None
    shape = (batch.n_segments, batch.max_length, inputs.features[0].shape[1])
    padded = pad_segments(model.ops, inputs.features, batch.segments, shape)
    with_grad = is_train and features.trainable
    kwargs[features.arg] = xp2torch(padded, requires_grad=with_grad, device=device)

    def convert_gradient(d_inputs: ArgsKwargs) -> Optional[List[Floats2d]]:
        if not with_grad:
            return None
        d_padded = cast(Floats3d, torch2xp(d_inputs.kwargs[features.arg]))
        return unpad_segments(model.ops, d_padded, batch.segments, batch.doc_lengths)

    return ArgsKwargs(args=(), kwargs=kwargs), convert_gradient


def convert_segment_outputs(
    model: Model, inputs_outputs: Tuple[SegmentInputs, Any], is_train: bool
) -> Tuple[Tuple[List[Floats2d], Optional[float]], Callable]:
    """(S, T, W) states (or (states, loss)) -> (one (n_tokens, W) array per doc, the loss
    or None); the gradient (d_rows, d_loss) goes back into the module's backward call."""
    inputs, output = inputs_outputs
    states, loss = output if isinstance(output, tuple) else (output, None)
    batch = inputs.batch
    padded = cast(Floats3d, torch2xp(states.detach()))
    rows = unpad_segments(model.ops, padded, batch.segments, batch.doc_lengths)
    shape = padded.shape

    def convert_gradients(d_output: Tuple[List[Floats2d], float]) -> ArgsKwargs:
        d_rows, d_loss = d_output
        d_padded = pad_segments(model.ops, d_rows, batch.segments, shape)
        d_states = xp2torch(d_padded, device=states.device)
        if loss is None or not d_loss:
            return ArgsKwargs(args=(states,), kwargs={"grad_tensors": (d_states,)})
        d_loss_tensor = torch.tensor(d_loss, dtype=loss.dtype, device=loss.device)
        return ArgsKwargs(
            args=((states, loss),), kwargs={"grad_tensors": (d_states, d_loss_tensor)}
        )

    loss_value = None if loss is None else float(loss.detach())
    return (rows, loss_value), convert_gradients
