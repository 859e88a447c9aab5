"""spacy_lmcrf.batch_by_length.v1: batches of a fixed number of sequences of similar length."""

import random
from itertools import islice
from typing import Callable, Iterable, Iterator, List, Optional

from spacy.training import Example
from spacy.util import registry


def example_characters(example: Example) -> int:
    """The characters of an example's text: what a character-level LSTM runs over."""
    return len(example.predicted.text)


@registry.batchers("spacy_lmcrf.batch_by_length.v1")
def create_length_batcher(
    size: int = 10,
    buffer: int = 100,
    get_length: Optional[Callable[[Example], int]] = None,
) -> Callable[[Iterable[Example]], Iterator[List[Example]]]:
    """Batches of `size` examples (sentences) of similar length, in random order.

    The examples are read in their order (spaCy shuffles them every epoch) in chunks of
    size x buffer; each chunk is sorted by length, cut into batches of `size`, and its
    batches are shuffled. A batch therefore has as many sentences as with
    spacy.batch_by_sequence.v1 (only the epoch's last batch may have fewer, and the number
    of batches per epoch is the same), but recurrent layers pad it to a length close to
    its average instead of the longest of `size` random sentences: on CoNLL-2003 in
    batches of 10, random order pads the character streams to 2.5 times their length,
    sorted chunks of 1,000 to 1.004 times. Liu et al.'s LM-LSTM-CRF code also trains on
    batches of similar length, drawn from four length buckets.

    size (int): examples per batch.
    buffer (int): batches per sorted chunk; 1 gives plain batches of `size` in order.
    get_length (Optional[Callable[[Example], int]]): the length to sort by; the number of
        characters of the text by default.
    """
    if size < 1:
        raise ValueError(f"spacy_lmcrf.batch_by_length.v1: size must be at least 1, got {size}")
    if buffer < 1:
        raise ValueError(f"spacy_lmcrf.batch_by_length.v1: buffer must be at least 1, got {buffer}")
    length = get_length or example_characters

    def batch(examples: Iterable[Example]) -> Iterator[List[Example]]:
        stream = iter(examples)
        while True:
            chunk = list(islice(stream, size * buffer))
            if not chunk:
                return
            chunk.sort(key=length)
            batches = [chunk[start : start + size] for start in range(0, len(chunk), size)]
            random.shuffle(batches)
            yield from batches

    return batch
