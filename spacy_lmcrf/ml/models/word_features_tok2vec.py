"""spacy_lmcrf.WordFeaturesTok2Vec.v1: word embeddings concatenated with the vectors of
another tok2vec (e.g. a listener of a shared character encoder), read by a word-level
context encoder. A language's own part of Yang et al. 2016's cross-lingual model."""

from typing import List, Optional

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model
from thinc.types import Floats2d

from ..featurize.vocab import (
    extend_vocabularies,
    has_vectors,
    has_vocabulary,
    vocabulary_attrs,
    word_width,
)
from ..featurize.words import featurize_model_words
from ..ids import DEFAULT_WORD_WIDTH
from ..modules.birnn import BiRNNEncoder
from ..modules.word_embed import WordEmbedding
from ..modules.word_features import WordFeatureEncoder
from ..torch_bridge import FeaturesInput, torch_module, torch_tok2vec
from .word_embed import init_word_embeddings

FEATURES = FeaturesInput("features", "features")


@registry.architectures("spacy_lmcrf.WordFeaturesTok2Vec.v1")
def build_word_features_tok2vec(
    features: Model[List[Doc], List[Floats2d]],
    word_embed: WordEmbedding,
    encoder: BiRNNEncoder,
    use_vectors: bool = True,
    max_length: int = 128,
) -> Model[List[Doc], List[Floats2d]]:
    """Each token's word embedding concatenated with its vector from `features`, read by
    a context encoder. In cross-lingual joint training (Yang et al. 2016) `features` is a
    listener of the shared character encoder (spacy_lmcrf.CharTok2Vec.v1) and each
    language's head has its own word embeddings and word bi-GRU.

    features (Model[List[Doc], List[Floats2d]]): per-token features, nO set (e.g.
        spacy.Tok2VecListener.v1 with the shared tok2vec's width).
    word_embed (WordEmbedding): this model's own word embeddings (spacy_lmcrf.WordEmbedding.v1).
    encoder (BiRNNEncoder): the context encoder (spacy_lmcrf.BiGRUEncoder.v1 or BiLSTMEncoder.v1).
    use_vectors (bool): initialise the embeddings from the pipeline's vectors (and take
        their width); false ignores them, for a language the vectors are not of.
    max_length (int): longest sequence run through the encoder (sentences, or windows).
    """
    if not features.has_dim("nO") or features.get_dim("nO") is None:
        raise ValueError(
            "WordFeaturesTok2Vec needs a features model with its output width (nO) set."
        )
    return torch_tok2vec(
        "word_features_tok2vec",
        WordFeatureEncoder(word_embed, encoder, features.get_dim("nO")),
        featurize_model_words,
        init=init,
        attrs={
            "max_length": max_length,
            "with_chars": False,
            "max_word_length": None,
            "use_vectors": use_vectors,
            **vocabulary_attrs(
                min_freq=word_embed.min_freq,
                lowercase=word_embed.lowercase,
                zero_digits=word_embed.zero_digits,
                include_vectors=word_embed.include_vectors and use_vectors,
            ),
        },
        title="WordFeaturesTok2Vec",
        ready=has_vocabulary,
        features=(features, FEATURES),
    )


def init(model: Model, X: Optional[List[Doc]] = None, Y=None) -> Model:
    """Build (or extend) the word vocabulary from X (this model's training docs) and
    size the torch module; the features model is initialized with X too."""
    model.get_ref("features").initialize(X=X)
    if not X:
        return model
    module = torch_module(model)
    spacy_vocab = X[0].vocab
    vectors = spacy_vocab if model.attrs["use_vectors"] and has_vectors(spacy_vocab) else None
    if vectors is not None:
        width = word_width(spacy_vocab, module.word_embed.requested_width, "WordEmbedding", "width")
    else:
        width = module.word_embed.requested_width or DEFAULT_WORD_WIDTH
    vocab = extend_vocabularies(model, X, with_lm_words=False)
    module.resize(n_words=vocab.n_words, word_width=width)
    init_word_embeddings(module.word_embed.table.weight, vocab, vectors)
    return model
