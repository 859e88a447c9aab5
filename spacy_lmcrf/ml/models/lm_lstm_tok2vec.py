"""spacy_lmcrf.LMLSTMTok2Vec.v1: LM-LSTM-CRF's encoder as a spaCy tok2vec.

It honours spaCy's tok2vec contract (List[Doc] -> one row per token) and owns the
co-trained language model: in training it also computes lm_weight x the LM loss and
adds that loss's gradient when it is backpropagated, so the language model trains
whether the tok2vec is inline in a component or shared through a listener.
"""

from typing import Callable, List, Optional, Tuple

import torch
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import ArgsKwargs, Model, torch2xp, xp2torch
from thinc.types import Floats2d

from ..featurize.char_stream import (
    DEFAULT_MAX_TOKEN_CHARS,
    FeatureBatch,
    check_max_token_chars,
    featurize,
)
from ..featurize.vocab import (
    extend_vocabularies,
    get_vocabularies,
    has_vectors,
    word_width,
)
from ..ids import DEFAULT_WORD_WIDTH
from ..modules.lm_lstm import LMLSTMEncoder
from ..torch_bridge import pad_segments, unpad_segments, wrap_torch_module
from .word_embed import init_word_embeddings


@registry.architectures("spacy_lmcrf.LMLSTMTok2Vec.v1")
def build_lm_lstm_tok2vec(
    *,
    char_dim: int = 30,
    char_hidden: int = 300,
    char_depth: int = 1,
    highway_depth: int = 1,
    use_highway: bool = True,
    lm_weight: float = 1.0,
    word_dim: Optional[int] = None,
    width: int = 300,
    depth: int = 1,
    dropout: float = 0.5,
    min_freq: int = 5,
    lowercase: bool = True,
    include_vectors: bool = True,
    max_length: int = 128,
    max_token_chars: Optional[int] = DEFAULT_MAX_TOKEN_CHARS,
) -> Model[List[Doc], List[Floats2d]]:
    """The LM-LSTM-CRF encoder (Liu et al. 2018): a character language model, co-trained
    through highway units, whose states are concatenated with word embeddings and read
    by a word-level bi-LSTM. Defaults are the paper's Table 3.

    char_dim (int): character embedding size.
    char_hidden (int): state size of each of the two character LSTMs.
    char_depth (int): stacked layers per character LSTM.
    highway_depth (int): highway units per highway (0 behaves like use_highway=False).
    use_highway (bool): False is the paper's "no highway" (NH) ablation.
    lm_weight (float): lambda, the weight of the language-model loss; 0 is the paper's
        "no language model" (NL) ablation. A component trains on its CRF loss, summed
        over the batch's sentences (or windows), plus lambda x the LM loss, the mean
        cross-entropy per word of the forward LM plus that of the backward LM over the
        batch's words: the LM term does not grow with the batch and the CRF term does, so
        larger batches weigh the LM less against the labels. The "_lm" loss reported in
        losses is lambda x the LM loss.
    word_dim (Optional[int]): word embedding size; None takes the width of the
        pipeline's vectors, or 100 if the pipeline has none.
    width (int): output width, the word bi-LSTM's two directions together.
    depth (int): stacked word bi-LSTM layers.
    dropout (float): dropout on embeddings, character states, highway outputs and the
        word bi-LSTM's input and output.
    min_freq (int): training words rarer than this map to the unknown row unless the
        pipeline has a vector for them; the language model predicts only the words at
        least this frequent.
    lowercase (bool): look words up lowercased (for lowercase vectors such as GloVe).
    include_vectors (bool): give every word of the pipeline's vectors a row (initialised
        from its vector and fine-tuned).
    max_length (int): longest sequence run through the LSTMs: sentences when the doc
        has sentence boundaries, otherwise windows of this many tokens.
    max_token_chars (Optional[int]): a longer token enters the character stream as its
        first and last max_token_chars / 2 characters (its word embedding and LM target
        still read the whole token), so one very long token (base64, minified JSON, a CJK
        run) costs the character LSTMs no more than a long word. The default, 64, leaves
        every token of CoNLL-2000/2002/2003 whole (the longest has 62); null keeps all.
    """
    check_max_token_chars(max_token_chars)
    if highway_depth < 1:
        use_highway = False
    module = LMLSTMEncoder(
        char_dim=char_dim,
        char_hidden=char_hidden,
        char_depth=char_depth,
        highway_depth=max(highway_depth, 1),
        use_highway=use_highway,
        use_lm=lm_weight > 0,
        word_dim=word_dim or DEFAULT_WORD_WIDTH,
        width=width,
        depth=depth,
        dropout=dropout,
    )
    wrapper = wrap_torch_module(module, _convert_inputs, _convert_outputs)
    return Model(
        "lm_lstm_tok2vec",
        forward,
        init=init,
        layers=[wrapper],
        refs={"encoder": wrapper},
        dims={"nO": width},
        attrs={
            "lm_weight": float(lm_weight),
            "word_dim": word_dim,
            "min_freq": min_freq,
            "lowercase": lowercase,
            "include_vectors": include_vectors,
            "max_length": max_length,
            "max_token_chars": max_token_chars,
            "chars": [],
            "words": [],
            "lm_words": [],
            "last_lm_loss": None,
            "init_with_all_docs": True,
        },
    )


def init(model: Model, X: Optional[List[Doc]] = None, Y=None) -> Model:
    """Build the vocabularies from X (all training docs) and size the torch module.

    Initializing again extends the vocabularies (e.g. a shared tok2vec, first
    initialized by spaCy's tok2vec component from a sample, then by each listening
    component from its training data). It re-initialises the whole word table
    (uniform rows, then the pipeline's vectors) every time, and the character table
    and the LM's output layers only if their vocabularies grew. The character LSTMs and
    highways keep their weights, and so does the word bi-LSTM unless the word width
    changed (word_dim = null and vectors added since)."""
    if not X:
        return model
    spacy_vocab = X[0].vocab
    word_dim = word_width(spacy_vocab, model.attrs["word_dim"], "LMLSTMTok2Vec", "word_dim")
    vocab = extend_vocabularies(model, X)
    module = _torch_module(model)
    module.resize(
        n_chars=vocab.n_chars,
        n_words=vocab.n_words,
        word_dim=word_dim,
        n_lm_words=vocab.n_lm_words,
    )
    init_word_embeddings(
        module.word_embed.weight, vocab, spacy_vocab if has_vectors(spacy_vocab) else None
    )
    return model


def _torch_module(model: Model) -> LMLSTMEncoder:
    return model.get_ref("encoder").shims[0]._model


def forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[List[Floats2d], Callable]:
    if not model.attrs["chars"]:
        raise ValueError(
            "LMLSTMTok2Vec has no vocabulary yet: initialize the pipeline "
            "(nlp.initialize(get_examples)) before using it."
        )
    with_lm = is_train and model.attrs["lm_weight"] > 0
    batch = featurize(
        docs,
        get_vocabularies(model),
        max_length=model.attrs["max_length"],
        with_lm_targets=with_lm,
        max_token_chars=model.attrs["max_token_chars"],
    )
    if batch.n_segments == 0:
        outputs = [model.ops.alloc2f(0, model.get_dim("nO")) for _ in docs]
        return outputs, lambda d_outputs: []
    batch.lm_weight = model.attrs["lm_weight"]
    outputs, backprop = model.get_ref("encoder")(batch, is_train)
    if batch.lm_loss is not None:
        model.attrs["last_lm_loss"] = batch.lm_loss
    return outputs, backprop


def _convert_inputs(
    model: Model, batch: FeatureBatch, is_train: bool
) -> Tuple[ArgsKwargs, Callable]:
    device = model.shims[0].device

    def as_tensor(array):
        return torch.from_numpy(array).to(device, non_blocking=True)

    kwargs = {
        "word_ids": as_tensor(batch.word_ids),
        "lengths_cpu": torch.from_numpy(batch.lengths),
        "char_ids": as_tensor(batch.char_ids),
        "char_ids_rev": as_tensor(batch.char_ids_rev),
        "char_lengths_cpu": torch.from_numpy(batch.char_lengths),
        "fwd_after": as_tensor(batch.fwd_after),
        "bwd_before": as_tensor(batch.bwd_before),
    }
    if batch.lm_targets is not None:
        kwargs["fwd_before"] = as_tensor(batch.fwd_before)
        kwargs["bwd_after"] = as_tensor(batch.bwd_after)
        kwargs["lm_targets"] = as_tensor(batch.lm_targets)
    return ArgsKwargs(args=(), kwargs=kwargs), lambda d_inputs: []


def _convert_outputs(model: Model, inputs_outputs, is_train: bool):
    batch, (states, lm_loss) = inputs_outputs
    if lm_loss is not None:
        batch.lm_loss = float(lm_loss.detach()) * batch.lm_weight
    padded = torch2xp(states.detach())
    outputs = unpad_segments(model.ops, padded, batch.segments, batch.doc_lengths)

    def convert_gradients(d_outputs: List[Floats2d]) -> ArgsKwargs:
        d_padded = pad_segments(model.ops, d_outputs, batch.segments, padded.shape)
        d_states = xp2torch(d_padded, device=states.device)
        if lm_loss is None:
            return ArgsKwargs(args=(states,), kwargs={"grad_tensors": (d_states,)})
        d_lm = torch.tensor(batch.lm_weight, dtype=lm_loss.dtype, device=lm_loss.device)
        return ArgsKwargs(args=((states, lm_loss),), kwargs={"grad_tensors": (d_states, d_lm)})

    return outputs, convert_gradients
