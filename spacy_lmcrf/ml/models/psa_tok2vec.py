"""spacy_lmcrf.PSATok2Vec.v1: Wei et al.'s encoder (Figure 2): word embeddings and a
character encoder -> context fusion layer 1 -> word-level context encoder -> context
fusion layer 2, as one torch module (a WordCharEncoder with fusion layers).

With both fusion layers off it is the plain BiLSTM-CRF baseline's tok2vec (the same
module as spacy_lmcrf.WordCharTok2Vec.v1), so Table VII's ablations are overrides of
one config.
"""

import copy
from typing import Dict, List, Optional

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model
from thinc.types import Floats2d

from ..modules.birnn import BiRNNEncoder
from ..modules.char_encoders import CharEncoder
from ..modules.psa import ContextFusion
from ..modules.word_char import WordCharEncoder
from ..modules.word_embed import WordEmbedding
from ..torch_bridge import torch_module
from .word_char_tok2vec import word_char_model


@registry.architectures("spacy_lmcrf.PSATok2Vec.v1")
def build_psa_tok2vec(
    word_embed: WordEmbedding,
    encoder: BiRNNEncoder,
    fusion: ContextFusion,
    char_embed: Optional[CharEncoder] = None,
    fuse_input: bool = True,
    fuse_output: bool = True,
    max_length: int = 128,
) -> Model[List[Doc], List[Floats2d]]:
    """Wei et al.'s tok2vec: self-attentional context fusion layers with
    position-aware self-attention before and after a word-level context encoder.

    word_embed (WordEmbedding): the word embeddings (spacy_lmcrf.WordEmbedding.v1).
    encoder (BiRNNEncoder): the context encoder (spacy_lmcrf.BiLSTMEncoder.v1 or
        BiGRUEncoder.v1); its input and output dropout sit between it and the fusion layers.
    fusion (ContextFusion): the fusion layer's settings (spacy_lmcrf.ContextFusion.v1);
        each fusion layer switched on gets its own copy, sized to its input.
    char_embed (Optional[CharEncoder]): the character encoder (spacy_lmcrf.CharBiLSTM.v1
        in the paper), or None.
    fuse_input (bool): the first fusion layer, over the word and character features.
    fuse_output (bool): the second fusion layer, over the context encoder's output.
    max_length (int): longest sequence run through the encoders and attention:
        sentences when the doc has sentence boundaries, otherwise windows of this many tokens.
    """
    module = WordCharEncoder(
        word_embed,
        char_embed,
        encoder,
        input_fusion=copy.deepcopy(fusion) if fuse_input else None,
        output_fusion=copy.deepcopy(fusion) if fuse_output else None,
    )
    return word_char_model(module, max_length, name="psa_tok2vec")


def fusion_layers(model: Model) -> Dict[str, ContextFusion]:
    """The context fusion layers of a PSA tok2vec, by place: {"input": ..., "output": ...}
    (those switched on)."""
    module = torch_module(model)
    layers = {"input": module.input_fusion, "output": module.output_fusion}
    return {place: layer for place, layer in layers.items() if layer is not None}
