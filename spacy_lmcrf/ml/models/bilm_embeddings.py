"""spacy_lmcrf.BiLMEmbeddings.v1: words as top-layer states of pretrained forward and
backward word-level LMs, h_LM = [h_fwd; h_bwd] (Peters et al. 2017, section 2.3).

Each segment (a sentence, or a window of max_length tokens) is read as a line of the
pretraining text: the forward LM reads "</s> w1 ... wn" and its state after w_k is
w_k's forward embedding; the backward LM reads "</s> wn ... w1" and its state after
w_k is w_k's backward embedding. Tokens outside the LMs' vocabulary are <unk>. The
softmax layers are left behind, and the LMs are fixed (the paper fixes them).
"""

from pathlib import Path
from typing import List, Optional

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model
from thinc.types import Floats2d

from ..derived import derived_value
from ..featurize.lm_words import LMBatch, featurize_lm_words
from ..modules.bilm_states import BiLMStates
from ..modules.word_lm import BiWordLM
from ..modules.word_vocab import WordVocab
from ..torch_bridge import torch_device, torch_module, torch_tok2vec


@registry.architectures("spacy_lmcrf.BiLMEmbeddings.v1")
def build_bilm_embeddings(
    lm_path: Optional[str],
    output_size: int,
    group_size: int = 32,
    max_length: int = 128,
) -> Model[List[Doc], List[Floats2d]]:
    """TagLM's bidirectional LM embeddings: 2 x output_size features per token from a
    forward and a backward word LM pretrained with `spacy lmcrf pretrain-word-lm`, whose
    weights stay fixed.

    lm_path (Optional[str]): the pretrained LMs (word_lm.msgpack), read at
        initialization; a loaded pipeline holds the weights itself and never reads it.
    output_size (int): the width of each LM's top-layer states (its projection_size, or
        hidden_size without a projection), checked against the file, so that the output
        width is known when the model is built.
    group_size (int): segments run together, grouped by length.
    max_length (int): longest segment in tokens: sentences when the doc has sentence
        boundaries, otherwise windows of this many tokens.
    """
    if output_size < 1 or group_size < 1 or max_length < 1:
        raise ValueError("output_size, group_size and max_length must be positive")
    return torch_tok2vec(
        "bilm_embeddings",
        BiLMStates(output_size, group_size=group_size),
        featurize,
        init=init,
        attrs={"lm_path": lm_path, "max_length": max_length, "lm_vocab": []},
        title="BiLMEmbeddings",
        width=2 * output_size,
        ready=has_lms,
        missing="LMs",
        trainable=never_trained,
        module_ref="lms",
    )


def get_module(model: Model) -> BiLMStates:
    return torch_module(model, "lms")


def has_lms(model: Model) -> bool:
    return bool(model.attrs["lm_vocab"])


def never_trained(model: Model) -> bool:
    return False


def init(model: Model, X: Optional[List[Doc]] = None, Y=None) -> Model:
    """Read the pretrained LMs from lm_path (once: initializing again keeps them)."""
    if has_lms(model):
        return model
    lm_path = model.attrs["lm_path"]
    if not lm_path:
        raise ValueError(
            "BiLMEmbeddings needs lm_path: the word_lm.msgpack written by "
            "`spacy lmcrf pretrain-word-lm` "
            "(e.g. --paths.word_lm training/wordlm_en/word_lm.msgpack)"
        )
    lms = BiWordLM.load(Path(lm_path))
    module = get_module(model)
    module.load_lms(lms, str(lm_path))
    module.to(torch_device(model, "lms"))
    for param in module.parameters():
        param.requires_grad_(False)
    model.attrs["lm_vocab"] = list(lms.vocab.words)
    return model


def featurize(model: Model, docs: List[Doc], is_train: bool) -> LMBatch:
    """The segments' words as LM ids (the vocabulary built once from attrs["lm_vocab"])."""
    words = model.attrs["lm_vocab"]
    vocab = derived_value(model.get_ref("lms"), "lm_vocab", (words,), lambda: WordVocab(words))
    return featurize_lm_words(docs, vocab, model.attrs["max_length"])
