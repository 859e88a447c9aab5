"""spacy_lmcrf.ContextualStringEmbeddings.v1: words as states of pretrained character LMs
(Akbik et al. 2018, equation 8).

Each segment (a sentence, or a window of max_length tokens) is read as the character
string "\\n" + the words joined by single spaces + "\\n", the form of a line of the
pretraining text. A word's embedding is the forward LM's output after the word's last
character concatenated with the backward LM's output after (reading leftwards) the
word's first character: [h^f_{t_{i+1}-1}; h^b_{t_i-1}] in the paper's notation. A word
longer than max_token_chars is read as its first and last characters only.
"""

from pathlib import Path
from typing import List, Optional

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model
from thinc.types import Floats2d

from ..derived import derived_value
from ..featurize.char_stream import DEFAULT_MAX_TOKEN_CHARS, check_max_token_chars
from ..featurize.strings import CharBatch, featurize_strings
from ..modules.char_lm import BiCharLM
from ..modules.char_vocab import CharVocab
from ..modules.contextual_string_lms import ContextualStringLMs
from ..torch_bridge import torch_device, torch_module, torch_tok2vec


@registry.architectures("spacy_lmcrf.ContextualStringEmbeddings.v1")
def build_contextual_string_embeddings(
    lm_path: Optional[str],
    hidden_size: int,
    fine_tune: bool = False,
    chunk_chars: int = 512,
    group_size: int = 32,
    max_length: int = 128,
    max_token_chars: Optional[int] = DEFAULT_MAX_TOKEN_CHARS,
) -> Model[List[Doc], List[Floats2d]]:
    """Contextual string embeddings: 2 x hidden_size features per token from a forward
    and a backward character LM pretrained with `spacy lmcrf pretrain-char-lm`.

    lm_path (Optional[str]): the pretrained LMs (char_lm.msgpack), read at
        initialization; a loaded pipeline holds the weights itself and never reads it.
    hidden_size (int): the LMs' hidden size (checked against the file), so that the
        output width is known when the model is built.
    fine_tune (bool): train the LMs with the tagger (the paper keeps them fixed).
    chunk_chars (int): characters run through the LMs at a time, the states carried
        from one chunk to the next: bounds the memory of very long segments.
    group_size (int): segments run together, grouped by length.
    max_length (int): longest segment in tokens: sentences when the doc has sentence
        boundaries, otherwise windows of this many tokens.
    max_token_chars (Optional[int]): a longer token is read as its first and last
        max_token_chars / 2 characters, so one very long token (base64, minified JSON, a
        CJK run) costs the LMs no more than a long word. The default, 64, leaves every
        token of CoNLL-2000/2002/2003 whole (the longest has 62); null keeps all.
    """
    if chunk_chars < 1 or group_size < 1 or max_length < 1:
        raise ValueError("chunk_chars, group_size and max_length must be positive")
    check_max_token_chars(max_token_chars)
    return torch_tok2vec(
        "contextual_string_embeddings",
        ContextualStringLMs(hidden_size, chunk_chars=chunk_chars, group_size=group_size),
        featurize,
        init=init,
        attrs={
            "lm_path": lm_path,
            "fine_tune": fine_tune,
            "max_length": max_length,
            "max_token_chars": max_token_chars,
            "chars": [],
        },
        title="ContextualStringEmbeddings",
        width=2 * hidden_size,
        ready=has_lms,
        missing="LMs",
        trainable=fine_tunes,
        module_ref="lms",
    )


def get_module(model: Model) -> ContextualStringLMs:
    return torch_module(model, "lms")


def has_lms(model: Model) -> bool:
    return bool(model.attrs["chars"])


def fine_tunes(model: Model) -> bool:
    return bool(model.attrs["fine_tune"])


def init(model: Model, X: Optional[List[Doc]] = None, Y=None) -> Model:
    """Read the pretrained LMs from lm_path (once: initializing again keeps them)."""
    if has_lms(model):
        return model
    lm_path = model.attrs["lm_path"]
    if not lm_path:
        raise ValueError(
            "ContextualStringEmbeddings needs lm_path: the char_lm.msgpack written by "
            "`spacy lmcrf pretrain-char-lm` "
            "(e.g. --paths.char_lm training/charlm_en/char_lm.msgpack)"
        )
    lms = BiCharLM.load(Path(lm_path))
    module = get_module(model)
    module.load_lms(lms)
    module.to(torch_device(model, "lms"))
    for param in module.parameters():
        param.requires_grad_(model.attrs["fine_tune"])
    model.attrs["chars"] = list(lms.vocab.chars)
    return model


def featurize(model: Model, docs: List[Doc], is_train: bool) -> CharBatch:
    """The segments' strings, read with the LMs' vocabulary (built once from attrs["chars"])."""
    chars = model.attrs["chars"]
    vocab = derived_value(model.get_ref("lms"), "char_vocab", (chars,), lambda: CharVocab(chars))
    return featurize_strings(docs, vocab, model.attrs["max_length"], model.attrs["max_token_chars"])
