"""spacy_lmcrf.TagLMTok2Vec.v1: TagLM (Peters et al. 2017): a hierarchical tagger's
token representation (character encoder + word embedding) read by two bidirectional
RNN layers, with the pretrained bidirectional LM embeddings (spacy_lmcrf.BiLMEmbeddings.v1)
concatenated at the input of the first layer, its output (the paper's default) or the
output of the second layer.

The LM embeddings are computed by their own (frozen) model and padded into the same
segments as the words; the rest is one torch module (TagLMEncoder), wrapped once, whose
vocabularies are built at initialization as spacy_lmcrf.WordCharTok2Vec.v1's.
"""

from typing import List, Optional

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model
from thinc.types import Floats2d

from ..featurize.vocab import has_vocabulary
from ..featurize.words import featurize_model_words
from ..modules.birnn import CELLS, BiRNNEncoder
from ..modules.char_encoders import CharEncoder
from ..modules.taglm import TagLMEncoder
from ..modules.word_embed import WordEmbedding
from ..torch_bridge import FeaturesInput, torch_tok2vec
from .word_char_tok2vec import init_word_char, word_char_attrs

# the LM embeddings are fixed: no gradient is computed for them
LM_STATES = FeaturesInput("bilm", "lm_states", trainable=False, first=False)


@registry.architectures("spacy_lmcrf.TagLMTok2Vec.v1")
def build_taglm_tok2vec(
    word_embed: WordEmbedding,
    char_embed: Optional[CharEncoder],
    bilm: Optional[Model[List[Doc], List[Floats2d]]],
    cell: str = "gru",
    width: int = 600,
    lm_position: str = "layer1",
    input_dropout: float = 0.25,
    output_dropout: float = 0.0,
    max_length: int = 128,
) -> Model[List[Doc], List[Floats2d]]:
    """TagLM's tok2vec: x_k = [c_k; w_k] -> bi-RNN -> bi-RNN, with h_LM concatenated at
    lm_position. With bilm = None it is the paper's "baseline without LM".

    word_embed (WordEmbedding): the word embeddings (spacy_lmcrf.WordEmbedding.v1;
        the paper: 50-dimensional Senna embeddings, fine-tuned).
    char_embed (Optional[CharEncoder]): the character encoder (spacy_lmcrf.CharBiGRU.v1
        for NER, spacy_lmcrf.CharCNN.v1 for chunking in the paper), or None.
    bilm (Optional[Model[List[Doc], List[Floats2d]]]): the LM embeddings
        (spacy_lmcrf.BiLMEmbeddings.v1), or None for the baseline without LM.
    cell (str): "gru" (the paper for NER) or "lstm" (for chunking).
    width (int): each layer's output width, the two directions together (the paper:
        2 x 300 GRU units for NER, 2 x 200 LSTM units for chunking).
    lm_position (str): where h_LM is concatenated: "input" (to x_k), "layer1" (to the
        first layer's output, the paper's choice) or "layer2" (to the second layer's output).
    input_dropout (float): dropout on the input of each RNN layer, LM embeddings
        included (the paper: 0.25 for NER, 0.5 for chunking); not on recurrent connections.
    output_dropout (float): dropout on the second layer's output (the paper: 0.5 for
        chunking, none for NER).
    max_length (int): longest sequence run through the RNNs: sentences when the doc
        has sentence boundaries, otherwise windows of this many tokens.
    """
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}")
    lm_width = 0
    if bilm is not None:
        if not bilm.has_dim("nO") or bilm.get_dim("nO") is None:
            raise ValueError(
                "TagLMTok2Vec: the bilm's output width (nO) must be set when it is built"
            )
        lm_width = bilm.get_dim("nO")
    module = TagLMEncoder(
        word_embed,
        char_embed,
        BiRNNEncoder(cell, width, 1, input_dropout=input_dropout),
        BiRNNEncoder(cell, width, 1, input_dropout=input_dropout, output_dropout=output_dropout),
        lm_width=lm_width,
        lm_position=lm_position,
    )
    attrs = word_char_attrs(module, max_length)
    attrs["lm_position"] = lm_position if bilm is not None else None
    return torch_tok2vec(
        "taglm_tok2vec",
        module,
        featurize_model_words,
        init=init,
        attrs=attrs,
        title="taglm_tok2vec",
        ready=has_vocabulary,
        features=(bilm, LM_STATES) if bilm is not None else None,
    )


def init(model: Model, X: Optional[List[Doc]] = None, Y=None) -> Model:
    """Read the LMs (once) and build the vocabularies from X (all training docs)."""
    if model.has_ref("bilm"):
        model.get_ref("bilm").initialize(X=X)
    return init_word_char(model, X, Y)
