"""spacy_lmcrf.TorchEncoder.v1: one of our context encoders over any tok2vec's rows."""

from typing import Callable, List, Optional, Tuple

import torch
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import ArgsKwargs, Model, torch2xp, xp2torch
from thinc.types import Floats2d

from ..featurize.segments import batch_segments
from ..modules.birnn import BiRNNEncoder
from ..torch_bridge import pad_segments, states_to_docs, unpad_segments, wrap_torch_module


@registry.architectures("spacy_lmcrf.TorchEncoder.v1")
def build_torch_encoder(
    tok2vec: Model[List[Doc], List[Floats2d]],
    encoder: Optional[BiRNNEncoder],
    max_length: int = 128,
) -> Model[List[Doc], List[Floats2d]]:
    """A context encoder over the rows of another tok2vec, e.g. spaCy's
    spacy.MultiHashEmbed.v2: the rows are padded once per segment, run through the
    encoder as one torch module, and unpadded.

    tok2vec (Model[List[Doc], List[Floats2d]]): the layer below (its nO is the
        encoder's input width, read when it is known: at build or initialization).
    encoder (Optional[BiRNNEncoder]): the context encoder (spacy_lmcrf.BiLSTMEncoder.v1
        or BiGRUEncoder.v1), or None for the tok2vec's rows as they are (so that a
        config can drop the encoder with one override: `--...encoder null`).
    max_length (int): longest sequence run through the encoder: sentences when the doc
        has sentence boundaries, otherwise windows of this many tokens.
    """
    if encoder is None:
        return tok2vec
    if tok2vec.has_dim("nO"):
        encoder.resize(tok2vec.get_dim("nO"))
    wrapper = wrap_torch_module(encoder, _convert_inputs, _convert_outputs)
    return Model(
        "torch_encoder",
        forward,
        init=init,
        layers=[tok2vec, wrapper],
        refs={"tok2vec": tok2vec, "encoder": wrapper},
        dims={"nO": encoder.width},
        attrs={
            "max_length": max_length,
            "init_with_all_docs": any(
                node.attrs.get("init_with_all_docs") for node in tok2vec.walk()
            ),
        },
    )


def init(model: Model, X: Optional[List[Doc]] = None, Y=None) -> Model:
    tok2vec = model.get_ref("tok2vec")
    tok2vec.initialize(X=X)
    if tok2vec.has_dim("nO"):
        model.get_ref("encoder").shims[0]._model.resize(tok2vec.get_dim("nO"))
    return model


def forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[List[Floats2d], Callable]:
    vectors, backprop_tok2vec = model.get_ref("tok2vec")(docs, is_train)
    segments = batch_segments(docs, model.attrs["max_length"])
    if not segments:
        outputs = [model.ops.alloc2f(0, model.get_dim("nO")) for _ in docs]
        return outputs, lambda d_outputs: backprop_tok2vec(vectors)
    outputs, backprop_encoder = model.get_ref("encoder")(
        (vectors, segments, [len(doc) for doc in docs]), is_train
    )

    def backprop(d_outputs: List[Floats2d]) -> List[Doc]:
        return backprop_tok2vec(backprop_encoder(d_outputs))

    return outputs, backprop


def _convert_inputs(model: Model, X, is_train: bool):
    vectors, segments, doc_lengths = X
    T = max(end - start for _, start, end in segments)
    padded = pad_segments(model.ops, vectors, segments, (len(segments), T, vectors[0].shape[1]))
    x = xp2torch(padded, requires_grad=is_train, device=model.shims[0].device)
    lengths = torch.tensor([end - start for _, start, end in segments])

    def convert_gradient(d_inputs: ArgsKwargs) -> List[Floats2d]:
        return unpad_segments(model.ops, torch2xp(d_inputs.args[0]), segments, doc_lengths)

    return ArgsKwargs(args=(x, lengths), kwargs={}), convert_gradient


def _convert_outputs(model: Model, inputs_outputs, is_train: bool):
    (_, segments, doc_lengths), states = inputs_outputs
    return states_to_docs(model, states, segments, doc_lengths)
