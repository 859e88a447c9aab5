"""spacy_lmcrf.CharTok2Vec.v1: each token's character encoding alone, as a tok2vec.

Yang et al. 2016's cross-lingual joint training shares only the character-level GRU
between languages: this tok2vec holds it in spaCy's tok2vec component, and each
language's head (spacy_lmcrf.WordFeaturesTok2Vec.v1 below its CRF) listens to it and
adds its own word embeddings and word-level encoder. The character vocabulary is built
from every training doc of every listening head: the union of the languages'.
"""

from typing import List, Optional

import torch
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model
from thinc.types import Floats2d
from torch import nn

from ..featurize.char_stream import Vocabularies
from ..featurize.vocab import extend_vocabularies
from ..modules.char_encoders import CharEncoder
from ..torch_bridge import convert_batch_outputs, wrap_torch_module
from .word_char_tok2vec import _convert_inputs, forward, get_module


class CharFeatures(nn.Module):
    """Each word's character encoding over padded segments: (S, T) -> (S, T, width)."""

    def __init__(self, char_embed: CharEncoder) -> None:
        super().__init__()
        self.char_embed = char_embed

    @property
    def width(self) -> int:
        return self.char_embed.width

    def resize_to_state_dict(self, state) -> None:
        self.char_embed.resize_to_state_dict(state, "char_embed.")

    def forward(
        self,
        word_ids: torch.Tensor,
        lengths_cpu: torch.Tensor,
        char_ids: Optional[torch.Tensor] = None,
        char_lengths_cpu: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        S, T = word_ids.shape
        device = self.char_embed.embed.weight.device
        valid = torch.arange(T, device=device)[None, :] < lengths_cpu.to(device)[:, None]
        words = self.char_embed(char_ids, char_lengths_cpu)
        return words.new_zeros((S, T, words.shape[-1])).index_put((valid,), words)


@registry.architectures("spacy_lmcrf.CharTok2Vec.v1")
def build_char_tok2vec(
    char_embed: CharEncoder, zero_digits: bool = True, max_length: int = 128
) -> Model[List[Doc], List[Floats2d]]:
    """A tok2vec whose vector for each token is its character encoding alone (the part
    of Yang et al. 2016's model that cross-lingual joint training shares).

    char_embed (CharEncoder): the character encoder (spacy_lmcrf.CharBiGRU.v1, ...).
    zero_digits (bool): replace every digit by 0 before encoding.
    max_length (int): longest sequence batched together (sentences, or windows).
    """
    module = CharFeatures(char_embed)
    wrapper = wrap_torch_module(module, _convert_inputs, convert_batch_outputs)
    return Model(
        "char_tok2vec",
        forward,
        init=init,
        layers=[wrapper],
        refs={"encoder": wrapper},
        dims={"nO": module.width},
        attrs={
            "max_length": max_length,
            "max_word_length": char_embed.max_word_length,
            "min_freq": 1,
            "lowercase": False,
            "zero_digits": zero_digits,
            "include_vectors": False,
            "chars": [],
            "words": [],
            "lm_words": [],
            "init_with_all_docs": True,
        },
    )


def init(model: Model, X: Optional[List[Doc]] = None, Y=None) -> Model:
    """Build (or extend) the character vocabulary from X and size the table."""
    if not X:
        return model
    vocab = extend_vocabularies(model, X, with_lm_words=False)
    # the words are not used: keep only the characters
    model.attrs.update(
        Vocabularies(vocab.chars, (), (), lowercase=False, zero_digits=vocab.zero_digits).to_attrs()
    )
    get_module(model).char_embed.resize(vocab.n_chars)
    return model
