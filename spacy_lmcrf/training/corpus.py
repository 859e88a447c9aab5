"""Corpus readers that keep the corpus's own tokens, as the CoNLL benchmarks are defined,
and the reader and batcher of joint training (several corpora, one batch stream)."""

import random
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Union

from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Corpus, Example
from spacy.util import registry

# doc.user_data key holding the name of the corpus a doc was read from
CORPUS_KEY = "lmcrf_corpus"


def doc_corpus(doc: Doc) -> Optional[str]:
    """The corpus a doc was read from (doc.user_data["lmcrf_corpus"]), or None."""
    return doc.user_data.get(CORPUS_KEY)


class GoldTokenCorpus(Corpus):
    """spaCy's Corpus, with every Example's predicted doc built from the
    reference's own words and spaces instead of re-tokenizing its text.

    spacy.Corpus.v1 runs the pipeline's tokenizer over the text unless
    gold_preproc is set, and spaCy's English tokenizer splits about half of the
    CoNLL-2003 sentences differently from the corpus (e.g. "1996-08-30",
    "all-rounder"); gold_preproc in turn rebuilds each sentence with
    Span.as_doc, which drops doc.spans groups such as CoNLL-2000's chunks. This
    reader keeps each reference doc whole (entities, span groups and tags all
    stay) and predicts on exactly the tokens that conlleval scores.
    """

    def _make_example(self, nlp: Language, reference: Doc, gold_preproc: bool) -> Example:
        words = [token.text for token in reference]
        spaces = [bool(token.whitespace_) for token in reference]
        return Example(Doc(nlp.vocab, words=words, spaces=spaces), reference)


@registry.readers("spacy_lmcrf.GoldTokenCorpus.v1")
def create_gold_token_corpus(
    path: Optional[Union[str, Path]],
    gold_preproc: bool = False,
    max_length: int = 0,
    limit: int = 0,
    augmenter: Optional[Callable] = None,
) -> Callable[[Language], Iterable[Example]]:
    """Read .spacy files like spacy.Corpus.v1, keeping the corpus's tokens.

    Takes spacy.Corpus.v1's settings so a config can swap the reader alone
    (`--corpora.train.@readers spacy_lmcrf.GoldTokenCorpus.v1`).

    path (Optional[Union[str, Path]]): a .spacy file or a folder of them.
    gold_preproc (bool): must be false: the tokens are the corpus's anyway, and
        the sentence splitting that gold_preproc adds would drop span groups.
    max_length (int): must be 0 (no limit), for the same reason.
    limit (int): read at most this many docs; 0 for all.
    augmenter (Optional[Callable]): an optional data augmenter.
    """
    if path is None:
        raise ValueError("spacy_lmcrf.GoldTokenCorpus.v1: path is null; set it in [paths]")
    if gold_preproc or max_length:
        raise ValueError(
            "spacy_lmcrf.GoldTokenCorpus.v1 keeps whole docs with their own tokens: "
            f"gold_preproc must be false and max_length 0 (got {gold_preproc}, {max_length})"
        )
    return GoldTokenCorpus(path, gold_preproc=False, max_length=0, limit=limit, augmenter=augmenter)


@registry.readers("spacy_lmcrf.TaskCorpora.v1")
def create_task_corpora(
    corpora: Dict[str, Optional[Union[str, Path]]], limit: int = 0
) -> Callable[[Language], Iterable[Example]]:
    """Several corpora read as one (joint training, Yang et al. 2016), each with its own
    tokens (as spacy_lmcrf.GoldTokenCorpus.v1): every example's docs are tagged with
    their corpus's name in doc.user_data["lmcrf_corpus"], which
    spacy_lmcrf.task_batcher.v1 groups batches by and a component's `corpus`
    setting selects. The examples come interleaved, one from each corpus in turn.

    corpora (Dict[str, Optional[Union[str, Path]]]): corpus name -> .spacy file or folder;
        a null path leaves that corpus out (e.g. a joint task's dev set).
    limit (int): read at most this many docs of each corpus; 0 for all.
    """
    paths = {name: path for name, path in corpora.items() if path is not None}
    if not paths:
        raise ValueError(
            f"spacy_lmcrf.TaskCorpora.v1: every path is null ({sorted(corpora)}); "
            "set them in [paths]"
        )
    readers = {name: GoldTokenCorpus(path, limit=limit) for name, path in paths.items()}

    def read(nlp: Language) -> Iterator[Example]:
        streams = [_tagged(name, reader(nlp)) for name, reader in readers.items()]
        while streams:
            alive = []
            for stream in streams:
                example = next(stream, None)
                if example is not None:
                    yield example
                    alive.append(stream)
            streams = alive

    return read


def _tagged(name: str, examples: Iterable[Example]) -> Iterator[Example]:
    for example in examples:
        example.predicted.user_data[CORPUS_KEY] = name
        example.reference.user_data[CORPUS_KEY] = name
        yield example


@registry.batchers("spacy_lmcrf.task_batcher.v1")
def create_task_batcher(
    size: int, cycle: bool = True
) -> Callable[[Iterable[Example]], Iterator[List[Example]]]:
    """Batches of one corpus each, the corpora taking turns: the joint training of
    Yang et al. 2016, which iterates over the tasks (or languages) and takes a batch of
    each in turn. spaCy shuffles the examples of an epoch before batching; this batcher
    keeps that order within each corpus. The corpus of an example is
    doc.user_data["lmcrf_corpus"] (spacy_lmcrf.TaskCorpora.v1 sets it).

    size (int): examples (sentences) per batch; a corpus's last batch may be smaller.
    cycle (bool): true: an epoch lasts until the largest corpus has given all its
        batches, the smaller ones starting over (reshuffled) when they run out, so every
        corpus gives as many batches; false: a corpus that runs out drops out of the turns.
    """
    if size < 1:
        raise ValueError(f"spacy_lmcrf.task_batcher.v1: size must be at least 1, got {size}")

    def batch(examples: Iterable[Example]) -> Iterator[List[Example]]:
        by_corpus: Dict[str, List[Example]] = {}
        for i, example in enumerate(examples):
            name = doc_corpus(example.reference)
            if name is None:
                raise ValueError(
                    f"spacy_lmcrf.task_batcher.v1: example {i} has no corpus name in "
                    f"doc.user_data[{CORPUS_KEY!r}]; "
                    "read the training data with spacy_lmcrf.TaskCorpora.v1"
                )
            by_corpus.setdefault(name, []).append(example)
        n_batches = {name: -(-len(egs) // size) for name, egs in by_corpus.items()}
        longest = max(n_batches.values(), default=0)
        streams = {name: _batches(egs, size, cycle) for name, egs in by_corpus.items()}
        for turn in range(longest):
            for name, stream in streams.items():
                if cycle or turn < n_batches[name]:
                    yield next(stream)

    return batch


def _batches(examples: List[Example], size: int, cycle: bool) -> Iterator[List[Example]]:
    order = list(examples)
    while True:
        for start in range(0, len(order), size):
            yield order[start : start + size]
        if not cycle:
            return
        order = list(examples)
        random.shuffle(order)
