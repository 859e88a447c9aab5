"""spacy_lmcrf.LMLSTMTok2Vec.v1: LM-LSTM-CRF's encoder as a spaCy tok2vec.

It honours spaCy's tok2vec contract (List[Doc] -> one row per token) and owns the
co-trained language model: in training it also computes lm_weight x the LM loss and
adds that loss's gradient when it is backpropagated, so the language model trains
whether the tok2vec is inline in a component or shared through a listener.
"""

from typing import Any, Callable, List, Optional, Tuple

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model
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
    has_vocabulary,
    vocabulary_attrs,
    word_width,
)
from ..ids import DEFAULT_WORD_WIDTH
from ..modules.lm_lstm import LMLSTMEncoder
from ..torch_bridge import TorchTok2VecSpec, encode, torch_module, torch_tok2vec
from .word_embed import init_word_embeddings

# the attr in which a layer keeps its co-trained LM's loss of the last training pass
LM_LOSS = "last_lm_loss"
# the attr holding the weight of a pass's LM loss in its update: 1, or the pass's share of
# the batch's words when the component runs a batch in pieces (pipeline/update_pieces.py)
LM_LOSS_SCALE = "lm_loss_scale"


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
    return torch_tok2vec(
        "lm_lstm_tok2vec",
        module,
        featurize_stream,
        init=init,
        attrs={
            "lm_weight": float(lm_weight),
            "word_dim": word_dim,
            "max_length": max_length,
            "max_token_chars": max_token_chars,
            LM_LOSS: None,
            LM_LOSS_SCALE: 1.0,
            **vocabulary_attrs(
                min_freq=min_freq,
                lowercase=lowercase,
                zero_digits=False,
                include_vectors=include_vectors,
            ),
        },
        title="LMLSTMTok2Vec",
        ready=has_vocabulary,
        forward=forward,
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
    module = torch_module(model)
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


def forward(
    model: Model, docs: List[Doc], is_train: bool, *, spec: TorchTok2VecSpec
) -> Tuple[List[Floats2d], Callable]:
    """The rows of docs' tokens. In training, the co-trained LM's loss (the module's second
    output) is kept, times lm_weight, in attrs[LM_LOSS] for the component that updates
    this tok2vec, and its gradient (lm_weight) joins the rows' on the way back: spaCy's
    tok2vec contract (and its listeners) carries the rows alone."""
    (rows, lm_loss), backprop = encode(model, docs, is_train, spec=spec)
    lm_weight = model.attrs["lm_weight"]
    if lm_loss is not None:
        model.attrs[LM_LOSS] = lm_loss * lm_weight

    scale = model.attrs.get(LM_LOSS_SCALE, 1.0)  # read now: the component resets it

    def backprop_rows(d_rows: List[Floats2d]) -> Any:
        return backprop(d_rows, lm_weight * scale if lm_loss is not None else 0.0)

    return rows, backprop_rows


def featurize_stream(model: Model, docs: List[Doc], is_train: bool) -> FeatureBatch:
    """The character streams and word ids of docs, with the LM's targets in training."""
    return featurize(
        docs,
        get_vocabularies(model),
        max_length=model.attrs["max_length"],
        with_lm_targets=is_train and model.attrs["lm_weight"] > 0,
        max_token_chars=model.attrs["max_token_chars"],
    )


def lm_loss_layers(model: Model) -> List[Model]:
    """The layers of model (a component's, or a tok2vec's) that co-train an LM."""
    return [node for node in model.walk() if LM_LOSS in node.attrs]


def pop_lm_loss(layer: Model) -> Optional[float]:
    """The LM loss (times lm_weight) of layer's last training pass, once (then None)."""
    loss = layer.attrs[LM_LOSS]
    layer.attrs[LM_LOSS] = None
    return loss
