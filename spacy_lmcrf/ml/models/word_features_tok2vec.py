"""spacy_lmcrf.WordFeaturesTok2Vec.v1: word embeddings concatenated with the vectors of
another tok2vec (e.g. a listener of a shared character encoder), read by a word-level
context encoder. A language's own part of Yang et al. 2016's cross-lingual model."""

from typing import Callable, List, Optional, Tuple

import torch
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import ArgsKwargs, Model, torch2xp, xp2torch
from thinc.types import Floats2d
from torch import nn

from ..featurize.vocab import (
    extend_vocabularies,
    get_vocabularies,
    has_vectors,
    word_width,
)
from ..featurize.words import WordBatch, featurize_words
from ..ids import DEFAULT_WORD_WIDTH
from ..modules.birnn import BiRNNEncoder
from ..modules.word_embed import WordEmbedding
from ..torch_bridge import pad_segments, states_to_docs, unpad_segments, wrap_torch_module
from .word_embed import init_word_embeddings


class WordFeatureEncoder(nn.Module):
    """(S, T) word ids and (S, T, n_features) features -> (S, T, encoder.width)."""

    def __init__(self, word_embed: WordEmbedding, encoder: BiRNNEncoder, n_features: int) -> None:
        super().__init__()
        self.word_embed = word_embed
        self.encoder = encoder
        self.n_features = n_features
        self.resize(n_words=1, word_width=word_embed.width)

    @property
    def width(self) -> int:
        return self.encoder.width

    def resize(self, *, n_words: int, word_width: int) -> None:
        self.word_embed.resize(n_words, word_width)
        self.encoder.resize(self.word_embed.width + self.n_features)

    def resize_to_state_dict(self, state) -> None:
        self.word_embed.resize_to_state_dict(state, "word_embed.")
        self.encoder.resize_to_state_dict(state, "encoder.")

    def forward(
        self, word_ids: torch.Tensor, features: torch.Tensor, lengths_cpu: torch.Tensor
    ) -> torch.Tensor:
        x = torch.cat([self.word_embed(word_ids), features], dim=-1)
        return self.encoder(x, lengths_cpu)


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
    module = WordFeatureEncoder(word_embed, encoder, features.get_dim("nO"))
    wrapper = wrap_torch_module(module, _convert_inputs, _convert_outputs)
    return Model(
        "word_features_tok2vec",
        forward,
        init=init,
        layers=[features, wrapper],
        refs={"features": features, "encoder": wrapper},
        dims={"nO": module.width},
        attrs={
            "max_length": max_length,
            "min_freq": word_embed.min_freq,
            "lowercase": word_embed.lowercase,
            "zero_digits": word_embed.zero_digits,
            "include_vectors": word_embed.include_vectors and use_vectors,
            "use_vectors": use_vectors,
            "chars": [],
            "words": [],
            "lm_words": [],
            "init_with_all_docs": True,
        },
    )


def get_module(model: Model) -> WordFeatureEncoder:
    return model.get_ref("encoder").shims[0]._model


def init(model: Model, X: Optional[List[Doc]] = None, Y=None) -> Model:
    """Build (or extend) the word vocabulary from X (this model's training docs) and
    size the torch module; the features model is initialized with X too."""
    model.get_ref("features").initialize(X=X)
    if not X:
        return model
    module = get_module(model)
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


def forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[List[Floats2d], Callable]:
    if not model.attrs["words"]:
        raise ValueError(
            "WordFeaturesTok2Vec has no vocabulary yet: initialize the pipeline "
            "(nlp.initialize(get_examples)) before using it."
        )
    features, backprop_features = model.get_ref("features")(docs, is_train)
    batch = featurize_words(
        docs, get_vocabularies(model), max_length=model.attrs["max_length"], with_chars=False
    )
    if batch.n_segments == 0:
        outputs = [model.ops.alloc2f(0, model.get_dim("nO")) for _ in docs]
        return outputs, lambda d_outputs: backprop_features(features)
    outputs, backprop_encoder = model.get_ref("encoder")((batch, features), is_train)

    def backprop(d_outputs: List[Floats2d]) -> List[Doc]:
        return backprop_features(backprop_encoder(d_outputs))

    return outputs, backprop


def _convert_inputs(model: Model, X: Tuple[WordBatch, List[Floats2d]], is_train: bool):
    batch, features = X
    device = model.shims[0].device
    T = batch.word_ids.shape[1]
    padded = pad_segments(
        model.ops, features, batch.segments, (batch.n_segments, T, features[0].shape[1])
    )
    x = xp2torch(padded, requires_grad=is_train, device=device)
    kwargs = {
        "word_ids": torch.from_numpy(batch.word_ids).to(device),
        "features": x,
        "lengths_cpu": torch.from_numpy(batch.lengths),
    }

    def convert_gradient(d_inputs: ArgsKwargs) -> List[Floats2d]:
        return unpad_segments(
            model.ops, torch2xp(d_inputs.kwargs["features"]), batch.segments, batch.doc_lengths
        )

    return ArgsKwargs(args=(), kwargs=kwargs), convert_gradient


def _convert_outputs(model: Model, inputs_outputs, is_train: bool):
    (batch, _), states = inputs_outputs
    return states_to_docs(model, states, batch.segments, batch.doc_lengths)
