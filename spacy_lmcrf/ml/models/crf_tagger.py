"""spacy_lmcrf.CRFTagger.v1: a tok2vec, a projection to CRF potentials, and the batch they share."""

from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple, cast

import torch
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import ArgsKwargs, Model, torch2xp, xp2torch
from thinc.types import Floats2d, Floats3d

from ..featurize.segments import Segment, batch_segments, padding_groups
from ..modules.crf_potentials import PAIRWISE, CRFPotentials
from ..torch_bridge import (
    pad_segments,
    torch_device,
    torch_module,
    unpad_segments,
    wrap_torch_module,
)

N_INIT_SAMPLE = 10


@dataclass
class CRFGroup:
    """The CRF potentials of segments of similar length, padded to the longest of them.

    potentials: (S, T, L, L) float32 log-potentials (see spacy_lmcrf.ml.crf).
    lengths: (S,) segment lengths, on the potentials' device.
    rows: the group's segments, as indices into CRFScores.segments.
    """

    potentials: torch.Tensor
    lengths: torch.Tensor
    rows: List[int]


@dataclass
class CRFScores:
    """The CRF potentials of a batch of docs, one row per segment, in groups of similar
    length (padding_groups) so that a batch's memory grows with its tokens, not with its
    number of segments times its longest segment.

    groups: the groups, none when the batch has no tokens.
    segments: (doc index, start, end) of each segment.
    doc_lengths: the number of tokens of each doc.
    """

    groups: List[CRFGroup]
    segments: List[Segment]
    doc_lengths: List[int]


@registry.architectures("spacy_lmcrf.CRFTagger.v1")
def build_crf_tagger(
    tok2vec: Model[List[Doc], List[Floats2d]],
    pairwise: str = "large",
    dropout: float = 0.0,
    max_length: int = 128,
    nO: Optional[int] = None,
) -> Model[List[Doc], CRFScores]:
    """A CRF sequence labeler's model: per-token vectors from tok2vec are projected to
    CRF potentials over each sentence (or window of max_length tokens).

    tok2vec (Model[List[Doc], List[Floats2d]]): the token-to-vector layer. Its output width
        (nO) may be unknown until it is initialized, as spacy-transformers'
        TransformerListener's: the projection is then sized at initialization.
    pairwise (str): "large" for per-position pairwise potentials (LM-LSTM-CRF: a
        (L+1) x L score matrix per token), "small" for per-token emissions plus a
        transition matrix, or "none" for emissions only: no transitions and no tag-scheme
        constraints, i.e. a per-token softmax classifier trained and decoded exactly by
        the same code (Akbik et al. 2018's "Map" head).
    dropout (float): dropout on the vectors before the projection.
    max_length (int): the longest sequence the CRF runs over.
    nO (Optional[int]): the number of tags; set by the component from its labels.
    """
    if pairwise not in PAIRWISE:
        raise ValueError(f"pairwise must be one of {', '.join(PAIRWISE)}, got {pairwise!r}")
    # A placeholder input width until init knows the tok2vec's (resize_input).
    n_in = tok2vec.get_dim("nO") if tok2vec.has_dim("nO") is True else 1
    head = wrap_torch_module(
        CRFPotentials(n_in, nO or 1, pairwise=pairwise, dropout=dropout),
        _convert_inputs,
        _convert_outputs,
    )
    return Model(
        "crf_tagger",
        forward,
        init=init,
        layers=[tok2vec, head],
        refs={"tok2vec": tok2vec, "crf_head": head},
        dims={"nO": nO},
        attrs={"max_length": max_length},
    )


def get_crf_module(model: Model) -> CRFPotentials:
    return torch_module(model, "crf_head")


def init(model: Model, X: Optional[List[Doc]] = None, Y=None) -> Model:
    tok2vec = model.get_ref("tok2vec")
    if X is not None and not any(node.attrs.get("init_with_all_docs") for node in tok2vec.walk()):
        X = X[:N_INIT_SAMPLE]
    tok2vec.initialize(X=X)
    get_crf_module(model).resize_input(_output_width(tok2vec, X))
    return model


def _output_width(tok2vec: Model[List[Doc], List[Floats2d]], X: Optional[List[Doc]]) -> int:
    """The initialized tok2vec's output width: its nO, or else the width of its output on a
    sample of X (a tok2vec without an nO dim, such as a TransformerListener's chain)."""
    if tok2vec.has_dim("nO") is True:
        return tok2vec.get_dim("nO")
    if not X:
        raise ValueError(
            f"CRFTagger cannot tell the output width of its tok2vec ({tok2vec.name}): it has "
            "no nO after initialization, and no sample docs were given to run it on."
        )
    return tok2vec.predict(X[:N_INIT_SAMPLE])[0].shape[1]


def forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[CRFScores, Callable]:
    vectors, backprop_tok2vec = model.get_ref("tok2vec")(docs, is_train)
    segments = batch_segments(docs, model.attrs["max_length"])
    doc_lengths = [len(doc) for doc in docs]
    head = model.get_ref("crf_head")
    groups, backprops = [], []
    for rows in padding_groups(segments):
        group_segments = [segments[i] for i in rows]
        potentials, backprop_head = head((vectors, group_segments, doc_lengths), is_train)
        lengths = torch.tensor(
            [end - start for _, start, end in group_segments], device=potentials.device
        )
        groups.append(CRFGroup(potentials, lengths, rows))
        backprops.append(backprop_head)

    def backprop(d_potentials: List[torch.Tensor]) -> List[Doc]:
        """d_potentials: one gradient per group, in the order of scores.groups."""
        d_vectors = None
        for backprop_head, d_group in zip(backprops, d_potentials):
            d_group_vectors = backprop_head(d_group)  # fresh arrays, one per doc
            if d_vectors is None:
                d_vectors = d_group_vectors
            else:
                for total, d_doc in zip(d_vectors, d_group_vectors):
                    total += d_doc
        if d_vectors is None:  # no tokens in the batch
            d_vectors = [model.ops.alloc2f(*v.shape) for v in vectors]
        return backprop_tok2vec(d_vectors)

    return CRFScores(groups, segments, doc_lengths), backprop


def _convert_inputs(model: Model, X, is_train: bool):
    vectors, segments, doc_lengths = X
    width = vectors[0].shape[1]
    n_in = torch_module(model).n_in
    if width != n_in:
        raise ValueError(
            f"CRFTagger: the tok2vec's vectors have width {width}, but the CRF head takes "
            f"{n_in}: initialize the model (nlp.initialize) before using it."
        )
    T = max(end - start for _, start, end in segments)
    padded = pad_segments(model.ops, vectors, segments, (len(segments), T, width))
    device = torch_device(model)
    x = xp2torch(padded, requires_grad=is_train, device=device)
    lengths = torch.tensor([end - start for _, start, end in segments], device=device)

    def convert_gradient(d_inputs: ArgsKwargs) -> List[Floats2d]:
        d_padded = cast(Floats3d, torch2xp(d_inputs.args[0]))
        return unpad_segments(model.ops, d_padded, segments, doc_lengths)

    return ArgsKwargs(args=(x, lengths), kwargs={}), convert_gradient


def _convert_outputs(model: Model, inputs_outputs, is_train: bool):
    _, potentials = inputs_outputs

    def convert_gradient(d_potentials: torch.Tensor) -> ArgsKwargs:
        return ArgsKwargs(args=(potentials,), kwargs={"grad_tensors": (d_potentials,)})

    return potentials, convert_gradient
