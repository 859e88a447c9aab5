"""spacy_lmcrf.WordEmbedding.v1, and filling a word table from the pipeline's vectors."""

from typing import List, Optional, Tuple, Union

import numpy
import torch
from spacy.util import registry
from spacy.vocab import Vocab

from ..featurize.char_stream import Vocabularies
from ..featurize.vocab import vector_keys
from ..modules.init import init_embedding_uniform_
from ..modules.word_embed import WordEmbedding


@registry.architectures("spacy_lmcrf.WordEmbedding.v1")
def build_word_embedding(
    width: Optional[int] = None,
    min_freq: int = 5,
    lowercase: bool = True,
    zero_digits: bool = False,
    include_vectors: bool = True,
    fine_tune: bool = True,
) -> WordEmbedding:
    """Word embeddings initialised from the pipeline's vectors (a part for
    spacy_lmcrf.WordCharTok2Vec.v1). The vocabulary is built at initialization from
    every training doc: training words at least min_freq times frequent and, if
    include_vectors, every word of the vectors get a row; all other words share one
    unknown row. Rows without a vector start uniform in +-sqrt(3 / width) (Ma & Hovy 2016).

    width (Optional[int]): embedding width; None takes the width of the pipeline's
        vectors, or 100 if it has none.
    min_freq (int): training words rarer than this share the unknown row, unless the
        vectors have them.
    lowercase (bool): look words up lowercased, by this layer itself (for lowercase
        vectors such as GloVe; spaCy forgets `init vectors --attr LOWER` when saving).
    zero_digits (bool): replace every digit by 0 before lookup, in the words and in
        the characters a character encoder beside this table reads (Yang et al. 2016).
    include_vectors (bool): give every word of the pipeline's vectors a row.
    fine_tune (bool): train the table; False freezes it (rows without a vector keep
        their random values).
    """
    return WordEmbedding(
        width,
        min_freq=min_freq,
        lowercase=lowercase,
        zero_digits=zero_digits,
        include_vectors=include_vectors,
        fine_tune=fine_tune,
    )


def init_word_embeddings(
    table: torch.Tensor, vocab: Vocabularies, spacy_vocab: Optional[Vocab]
) -> None:
    """Uniform(+-sqrt(3/dim)) rows (Ma & Hovy 2016), replaced by the pipeline's vectors
    where a word of the vectors normalises to the row's word (vector_keys says which
    when several do); the padding row is zero.

    table (torch.Tensor): the word table, a row per word of vocab after the specials;
        filled in place, on its own device.
    vocab (Vocabularies): the words of the table's rows, normalised.
    spacy_vocab (Optional[Vocab]): the pipeline's vocab with its vectors; None: no vectors.
    """
    with torch.no_grad():
        init_embedding_uniform_(table)
        table[0].zero_()
        if spacy_vocab is None:
            return
        rows, keys = vector_sources(vocab, spacy_vocab, first_row=table.shape[0] - len(vocab.words))
        if rows:
            data = spacy_vocab.vectors.get_batch(keys)
            data = numpy.asarray(data.get() if hasattr(data, "get") else data, dtype="float32")
            table[torch.as_tensor(rows, device=table.device)] = torch.from_numpy(data).to(
                table.device
            )


def vector_sources(
    vocab: Vocabularies, spacy_vocab: Vocab, *, first_row: int
) -> Tuple[List[int], List[Union[int, str]]]:
    """The table rows the pipeline's vectors fill, and what each is looked up by.

    vocab (Vocabularies): the words of the table's rows, normalised.
    spacy_vocab (Vocab): the pipeline's vocab with its vectors.
    first_row (int): the table row of vocab.words[0].
    RETURNS (Tuple[List[int], List[Union[int, str]]]): the rows, and for each the key
        of the vector (vector_keys), or for floret vectors the row's word itself.
    """
    rows = range(first_row, first_row + len(vocab.words))
    if spacy_vocab.vectors.mode == "floret":
        return list(rows), list(vocab.words)
    keys = vector_keys(spacy_vocab, vocab.normalize)
    found = [(row, keys[word]) for row, word in zip(rows, vocab.words) if word in keys]
    return [row for row, _ in found], [key for _, key in found]
