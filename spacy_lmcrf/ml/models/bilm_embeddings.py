"""spacy_lmcrf.BiLMEmbeddings.v1: words as top-layer states of pretrained forward and
backward word-level LMs, h_LM = [h_fwd; h_bwd] (Peters et al. 2017, section 2.3).

Each segment (a sentence, or a window of max_length tokens) is read as a line of the
pretraining text: the forward LM reads "</s> w1 ... wn" and its state after w_k is
w_k's forward embedding; the backward LM reads "</s> wn ... w1" and its state after
w_k is w_k's backward embedding. Tokens outside the LMs' vocabulary are <unk>. The
softmax layers are left behind, and the LMs are fixed (the paper fixes them).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy
import torch
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import ArgsKwargs, Model, torch2xp
from thinc.types import Floats2d
from torch import nn

from ..featurize.segments import Segment, batch_segments
from ..modules.bucketing import length_groups, reverse_padded
from ..modules.word_lm import BiWordLM, WordLMEncoder
from ..modules.word_vocab import EOS, WordVocab
from ..torch_bridge import unpad_segments, wrap_torch_module


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
    module = BiLMStates(output_size, group_size=group_size)
    wrapper = wrap_torch_module(module, _convert_inputs, _convert_outputs)
    return Model(
        "bilm_embeddings",
        forward,
        init=init,
        layers=[wrapper],
        refs={"lms": wrapper},
        dims={"nO": 2 * output_size},
        attrs={"lm_path": lm_path, "max_length": max_length, "lm_vocab": []},
    )


class BiLMStates(nn.Module):
    """The encoders of the two LMs (embeddings + LSTM, no softmax) over a padded batch."""

    def __init__(self, output_size: int, *, group_size: int) -> None:
        super().__init__()
        self.output_size = output_size
        self.group_size = group_size
        self.forward_lm = WordLMEncoder(1, 1, output_size)
        self.backward_lm = WordLMEncoder(1, 1, output_size)

    def load_lms(self, lms: BiWordLM, source: str) -> None:
        if lms.output_size != self.output_size:
            raise ValueError(
                f"BiLMEmbeddings: output_size = {self.output_size} in the config, but the LMs of "
                f"{source} output {lms.output_size} per direction: set output_size = {lms.output_size}"
            )
        self.forward_lm = lms.forward_lm.encoder
        self.backward_lm = lms.backward_lm.encoder

    def resize_to_state_dict(self, state: Dict[str, torch.Tensor]) -> None:
        """Rebuild the encoders with the saved sizes before load_state_dict."""
        sizes = WordLMEncoder.sizes_of_state_dict(state, "forward_lm.")
        self.forward_lm = WordLMEncoder(**sizes)
        self.backward_lm = WordLMEncoder(**sizes)
        self.output_size = self.forward_lm.output_size

    def forward(
        self, word_ids: torch.Tensor, lengths_cpu: torch.Tensor, eos_id: int
    ) -> torch.Tensor:
        """word_ids (S, T) padded segments, lengths_cpu (S,) -> (S, T, 2 x output_size)."""
        S, T = word_ids.shape
        dtype = self.forward_lm.embed.weight.dtype
        out = torch.zeros((S, T, 2 * self.output_size), dtype=dtype, device=word_ids.device)
        for group in length_groups(lengths_cpu, self.group_size):
            lengths = lengths_cpu[group]
            n = int(lengths.max())
            rows = group.to(word_ids.device)
            ids = word_ids[rows, :n]
            eos = ids.new_full((len(group), 1), eos_id)
            fwd, _ = self.forward_lm(torch.cat([eos, ids], dim=1))
            bwd, _ = self.backward_lm(torch.cat([eos, reverse_padded(ids, lengths)], dim=1))
            states = torch.cat([fwd[:, 1:], reverse_padded(bwd[:, 1:], lengths)], dim=-1)
            out[rows, :n] = states
        return out


@dataclass
class LMBatch:
    segments: List[Segment]
    doc_lengths: List[int]
    lengths: numpy.ndarray  # (S,)
    word_ids: numpy.ndarray  # (S, T)
    eos_id: int


def featurize_lm_words(docs: List[Doc], vocab: WordVocab, max_length: int) -> LMBatch:
    """Each segment's tokens as the LMs' word ids (0, <unk>, for unknown words)."""
    segments = batch_segments(docs, max_length)
    lengths = numpy.array([end - start for _, start, end in segments], dtype="int64")
    word_ids = numpy.zeros(
        (len(segments), int(lengths.max()) if len(segments) else 0), dtype="int64"
    )
    for s, (doc_i, start, end) in enumerate(segments):
        word_ids[s, : end - start] = vocab.encode([token.text for token in docs[doc_i][start:end]])
    return LMBatch(segments, [len(doc) for doc in docs], lengths, word_ids, vocab.ids[EOS])


def get_module(model: Model) -> BiLMStates:
    return model.get_ref("lms").shims[0]._model


def init(model: Model, X: Optional[List[Doc]] = None, Y=None) -> Model:
    """Read the pretrained LMs from lm_path (once: initializing again keeps them)."""
    if model.attrs["lm_vocab"]:
        return model
    lm_path = model.attrs["lm_path"]
    if not lm_path:
        raise ValueError(
            "BiLMEmbeddings needs lm_path: the word_lm.msgpack written by "
            "`spacy lmcrf pretrain-word-lm` (e.g. --paths.word_lm training/wordlm_en/word_lm.msgpack)"
        )
    lms = BiWordLM.load(Path(lm_path))
    module = get_module(model)
    module.load_lms(lms, str(lm_path))
    module.to(model.get_ref("lms").shims[0].device)
    for param in module.parameters():
        param.requires_grad_(False)
    model.attrs["lm_vocab"] = list(lms.vocab.words)
    return model


def forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[List[Floats2d], Callable]:
    """The LM embeddings of docs' tokens; never trained (no gradient flows back)."""
    if not model.attrs["lm_vocab"]:
        raise ValueError(
            "BiLMEmbeddings has no LMs yet: initialize the pipeline "
            "(nlp.initialize(get_examples)) before using it."
        )
    batch = featurize_lm_words(docs, _lm_vocab(model), model.attrs["max_length"])
    if not batch.segments:
        return [model.ops.alloc2f(0, model.get_dim("nO")) for _ in docs], lambda d_outputs: []
    return model.get_ref("lms").predict(batch), lambda d_outputs: []


def _lm_vocab(model: Model) -> WordVocab:
    """The LMs' vocabulary, built once from attrs["lm_vocab"] and kept beside the module."""
    module = get_module(model)
    words = model.attrs["lm_vocab"]
    if getattr(module, "word_vocab_source", None) is not words:
        module.word_vocab = WordVocab(words)
        module.word_vocab_source = words
    return module.word_vocab


def _convert_inputs(model: Model, batch: LMBatch, is_train: bool) -> Tuple[ArgsKwargs, Callable]:
    device = model.shims[0].device
    kwargs = {
        "word_ids": torch.from_numpy(batch.word_ids).to(device),
        "lengths_cpu": torch.from_numpy(batch.lengths),
        "eos_id": batch.eos_id,
    }
    return ArgsKwargs(args=(), kwargs=kwargs), lambda d_inputs: []


def _convert_outputs(model: Model, inputs_outputs, is_train: bool):
    batch, states = inputs_outputs
    outputs = unpad_segments(
        model.ops, torch2xp(states.detach()), batch.segments, batch.doc_lengths
    )
    return outputs, lambda d_outputs: ArgsKwargs(args=(), kwargs={})
