"""A corpus reader that keeps the corpus's own tokens, as the CoNLL benchmarks are defined."""
from pathlib import Path
from typing import Callable, Iterable, Optional, Union

from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Corpus, Example
from spacy.util import registry


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
