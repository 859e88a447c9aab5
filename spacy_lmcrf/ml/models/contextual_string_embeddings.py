"""spacy_lmcrf.ContextualStringEmbeddings.v1: words as states of pretrained character LMs
(Akbik et al. 2018, equation 8).

Each segment (a sentence, or a window of max_length tokens) is read as the character
string "\\n" + the words joined by single spaces + "\\n", the form of a line of the
pretraining text. A word's embedding is the forward LM's output after the word's last
character concatenated with the backward LM's output after (reading leftwards) the
word's first character: [h^f_{t_{i+1}-1}; h^b_{t_i-1}] in the paper's notation. A word
longer than max_token_chars is read as its first and last characters only.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy
import torch
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import ArgsKwargs, Model
from thinc.types import Floats2d
from torch import nn

from ..featurize.char_stream import DEFAULT_MAX_TOKEN_CHARS, check_max_token_chars, token_chars
from ..featurize.segments import Segment, batch_segments
from ..modules.bucketing import length_groups, reverse_padded
from ..modules.char_lm import BiCharLM, CharLM
from ..modules.char_vocab import CharVocab
from ..torch_bridge import convert_batch_outputs, wrap_torch_module

BOUNDARY = "\n"
SEPARATOR = " "


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
    module = ContextualStringLMs(hidden_size, chunk_chars=chunk_chars, group_size=group_size)
    wrapper = wrap_torch_module(module, _convert_inputs, convert_batch_outputs)
    return Model(
        "contextual_string_embeddings",
        forward,
        init=init,
        layers=[wrapper],
        refs={"lms": wrapper},
        dims={"nO": 2 * hidden_size},
        attrs={
            "lm_path": lm_path,
            "fine_tune": fine_tune,
            "max_length": max_length,
            "max_token_chars": max_token_chars,
            "chars": [],
        },
    )


class ContextualStringLMs(nn.Module):
    """The two LMs, and the extraction of equation (8) over a padded batch of segments."""

    def __init__(self, hidden_size: int, *, chunk_chars: int, group_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.chunk_chars = chunk_chars
        self.group_size = group_size
        self.forward_lm = CharLM(1, 1, hidden_size)
        self.backward_lm = CharLM(1, 1, hidden_size)

    def load_lms(self, lms: BiCharLM) -> None:
        if lms.hidden_size != self.hidden_size:
            raise ValueError(
                f"ContextualStringEmbeddings: hidden_size = {self.hidden_size} in the config, but "
                f"the LM file's LSTMs have {lms.hidden_size}: set hidden_size = {lms.hidden_size}"
            )
        self.forward_lm = lms.forward_lm
        self.backward_lm = lms.backward_lm

    def resize_to_state_dict(self, state: Dict[str, torch.Tensor]) -> None:
        """Rebuild the LMs with the saved sizes before load_state_dict."""
        n_chars, embedding_size = state["forward_lm.embed.weight"].shape
        hidden_size = state["forward_lm.lstm.weight_hh_l0"].shape[1]
        num_layers = sum(1 for key in state if key.startswith("forward_lm.lstm.weight_hh_l"))
        self.hidden_size = hidden_size
        self.forward_lm = CharLM(n_chars, embedding_size, hidden_size, num_layers)
        self.backward_lm = CharLM(n_chars, embedding_size, hidden_size, num_layers)

    def run_lm(self, lm: CharLM, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """lm's outputs at positions (B, T) of ids (B, C), read chunk by chunk with the
        state carried over: (B, T, hidden_size)."""
        B, T = positions.shape
        out = ids.new_zeros((B, T, self.hidden_size), dtype=lm.decoder.weight.dtype)
        rows = torch.arange(B, device=ids.device)[:, None].expand(B, T)
        state = None
        for start in range(0, ids.shape[1], self.chunk_chars):
            end = start + self.chunk_chars
            outputs, state = lm(ids[:, start:end], state)
            here = (positions >= start) & (positions < end)
            if bool(here.any()):
                out = out.index_put((here,), outputs[rows[here], positions[here] - start])
        return out

    def forward(
        self,
        char_ids: torch.Tensor,
        char_lengths_cpu: torch.Tensor,
        last_chars: torch.Tensor,
        first_chars: torch.Tensor,
    ) -> torch.Tensor:
        """char_ids (S, C) padded segment strings, char_lengths_cpu (S,), and for every
        token slot (S, T) the position of its last and first character (0 at padding)
        -> (S, T, 2 x hidden_size)."""
        S, T = last_chars.shape
        out = char_ids.new_zeros(
            (S, T, 2 * self.hidden_size), dtype=self.forward_lm.decoder.weight.dtype
        )
        for group in length_groups(char_lengths_cpu, self.group_size):
            lengths = char_lengths_cpu[group]
            C = int(lengths.max())
            rows = group.to(char_ids.device)
            ids = char_ids[rows, :C]
            fwd = self.run_lm(self.forward_lm, ids, last_chars[rows])
            reversed_positions = (lengths.to(ids.device)[:, None] - 1 - first_chars[rows]).clamp(
                min=0
            )
            bwd = self.run_lm(self.backward_lm, reverse_padded(ids, lengths), reversed_positions)
            out = out.index_put((rows,), torch.cat([fwd, bwd], dim=-1))
        return out


@dataclass
class CharBatch:
    segments: List[Segment]
    doc_lengths: List[int]
    token_lengths: numpy.ndarray  # (S,)
    char_ids: numpy.ndarray  # (S, C)
    char_lengths: numpy.ndarray  # (S,)
    last_chars: numpy.ndarray  # (S, T)
    first_chars: numpy.ndarray  # (S, T)


def featurize_strings(
    docs: List[Doc],
    vocab: CharVocab,
    max_length: int,
    max_token_chars: Optional[int] = DEFAULT_MAX_TOKEN_CHARS,
) -> CharBatch:
    """Each segment's string, its character ids and where each word starts and ends.

    docs (List[Doc]): the batch.
    vocab (CharVocab): the LMs' characters.
    max_length (int): the most tokens per segment.
    max_token_chars (Optional[int]): the most characters read per token (token_chars):
        a segment's string has at most max_length x (max_token_chars + 1) + 1 characters.
    RETURNS (CharBatch): the padded strings and the words' first and last positions.
    """
    segments = batch_segments(docs, max_length)
    T = max((end - start for _, start, end in segments), default=0)
    strings, firsts, lasts = [], [], []
    for doc_i, start, end in segments:
        words = [token_chars(token.text, max_token_chars) for token in docs[doc_i][start:end]]
        first, position = [], len(BOUNDARY)
        for word in words:
            first.append(position)
            position += len(word) + len(SEPARATOR)
        firsts.append(first)
        lasts.append([p + len(w) - 1 for p, w in zip(first, words)])
        strings.append(BOUNDARY + SEPARATOR.join(words) + BOUNDARY)
    char_lengths = numpy.array([len(s) for s in strings], dtype="int64")
    char_ids = numpy.zeros((len(strings), int(char_lengths.max()) if strings else 0), dtype="int64")
    last_chars = numpy.zeros((len(strings), T), dtype="int64")
    first_chars = numpy.zeros((len(strings), T), dtype="int64")
    for s, string in enumerate(strings):
        char_ids[s, : len(string)] = vocab.encode(string)
        last_chars[s, : len(lasts[s])] = lasts[s]
        first_chars[s, : len(firsts[s])] = firsts[s]
    return CharBatch(
        segments=segments,
        doc_lengths=[len(doc) for doc in docs],
        token_lengths=numpy.array([end - start for _, start, end in segments], dtype="int64"),
        char_ids=char_ids,
        char_lengths=char_lengths,
        last_chars=last_chars,
        first_chars=first_chars,
    )


def get_module(model: Model) -> ContextualStringLMs:
    return model.get_ref("lms").shims[0]._model


def init(model: Model, X: Optional[List[Doc]] = None, Y=None) -> Model:
    """Read the pretrained LMs from lm_path (once: initializing again keeps them)."""
    if model.attrs["chars"]:
        return model
    lm_path = model.attrs["lm_path"]
    if not lm_path:
        raise ValueError(
            "ContextualStringEmbeddings needs lm_path: the char_lm.msgpack written by "
            "`spacy lmcrf pretrain-char-lm` (e.g. --paths.char_lm training/charlm_en/char_lm.msgpack)"
        )
    lms = BiCharLM.load(Path(lm_path))
    module = get_module(model)
    module.load_lms(lms)
    device = model.get_ref("lms").shims[0].device
    module.to(device)
    for param in module.parameters():
        param.requires_grad_(model.attrs["fine_tune"])
    model.attrs["chars"] = list(lms.vocab.chars)
    return model


def forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[List[Floats2d], Callable]:
    if not model.attrs["chars"]:
        raise ValueError(
            "ContextualStringEmbeddings has no LMs yet: initialize the pipeline "
            "(nlp.initialize(get_examples)) before using it."
        )
    batch = featurize_strings(
        docs, _char_vocab(model), model.attrs["max_length"], model.attrs["max_token_chars"]
    )
    if not batch.segments:
        return [model.ops.alloc2f(0, model.get_dim("nO")) for _ in docs], lambda d_outputs: []
    wrapper = model.get_ref("lms")
    if not (is_train and model.attrs["fine_tune"]):
        return wrapper.predict(batch), lambda d_outputs: []
    return wrapper(batch, is_train)


def _char_vocab(model: Model) -> CharVocab:
    """The LMs' vocabulary, built once from attrs["chars"] and kept beside the module."""
    module = get_module(model)
    vocab = getattr(module, "char_vocab", None)
    if vocab is None or vocab.chars != model.attrs["chars"]:
        vocab = module.char_vocab = CharVocab(model.attrs["chars"])
    return vocab


def _convert_inputs(model: Model, batch: CharBatch, is_train: bool) -> Tuple[ArgsKwargs, Callable]:
    device = model.shims[0].device
    kwargs = {
        "char_ids": torch.from_numpy(batch.char_ids).to(device),
        "char_lengths_cpu": torch.from_numpy(batch.char_lengths),
        "last_chars": torch.from_numpy(batch.last_chars).to(device),
        "first_chars": torch.from_numpy(batch.first_chars).to(device),
    }
    return ArgsKwargs(args=(), kwargs=kwargs), lambda d_inputs: []
