"""spacy_lmcrf.TorchEncoder.v1: one of our context encoders over any tok2vec's rows."""

from typing import List, Optional

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model
from thinc.types import Floats2d

from ..featurize.segments import SegmentBatch, featurize_segments
from ..modules.birnn import BiRNNEncoder
from ..torch_bridge import FeaturesInput, torch_module, torch_tok2vec

ROWS = FeaturesInput("tok2vec", "x")


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
    return torch_tok2vec(
        "torch_encoder",
        encoder,
        featurize,
        init=init,
        attrs={
            "max_length": max_length,
            "init_with_all_docs": any(
                node.attrs.get("init_with_all_docs") for node in tok2vec.walk()
            ),
        },
        title="TorchEncoder",
        features=(tok2vec, ROWS),
    )


def init(model: Model, X: Optional[List[Doc]] = None, Y=None) -> Model:
    tok2vec = model.get_ref("tok2vec")
    tok2vec.initialize(X=X)
    if tok2vec.has_dim("nO"):
        torch_module(model).resize(tok2vec.get_dim("nO"))
    return model


def featurize(model: Model, docs: List[Doc], is_train: bool) -> SegmentBatch:
    return featurize_segments(docs, model.attrs["max_length"])
