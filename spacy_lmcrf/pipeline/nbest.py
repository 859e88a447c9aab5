"""n-best decoding: each sentence's k most probable tag sequences, with their probabilities."""

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy

from ..ml.crf import NEG_INF, kbest_viterbi, log_partition
from ..ml.models.crf_tagger import CRFScores
from ..tags import tags_to_spans

Span3 = Tuple[int, int, str]


@dataclass
class TagPath:
    """One tag sequence of a sentence and its probability under the CRF.

    tags: one tag per token of the sentence.
    probability: P(exactly these tags | sentence), over every tag sequence.
    spans: for a span labeler, the spans these tags decode to, (start, end, label) in the
        doc's token offsets; None for a tagger.
    """

    tags: List[str]
    probability: float
    spans: Optional[List[Span3]] = None


@dataclass
class SentencePaths:
    """The best tag sequences of one sentence (or window) of a doc, best first.

    start, end: the sentence's tokens in the doc, doc[start:end].
    paths: at most k; fewer when the sentence has fewer valid tag sequences.
    """

    start: int
    end: int
    paths: List[TagPath]


def nbest_paths(
    scores: CRFScores, names: Sequence[str], scheme: Optional[str], k: int
) -> List[List[SentencePaths]]:
    """The k best tag sequences of every segment of scores, per doc and in doc order.

    Exact: list Viterbi (spacy_lmcrf.ml.crf.kbest_viterbi) over the potentials, each
    sequence's probability its score minus the log-partition, in float64. Sequences
    the potentials forbid (invalid transitions of the scheme, constraints added by the
    component, scored NEG_INF) are left out.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    per_doc: List[List[SentencePaths]] = [[] for _ in scores.doc_lengths]
    for group in scores.groups:
        potentials = group.potentials.double()
        paths, path_scores = kbest_viterbi(potentials, group.lengths, k)
        log_probs = (path_scores - log_partition(potentials, group.lengths)[:, None]).cpu()
        paths_np, log_probs_np = paths.cpu().numpy(), log_probs.numpy()
        for row, segment in enumerate(group.rows):
            doc_i, start, end = scores.segments[segment]
            found = []
            for rank in range(k):
                if not log_probs_np[row, rank] > NEG_INF / 2:
                    break  # no further sequence, or only forbidden ones
                tags = [names[i] for i in paths_np[row, rank, : end - start]]
                spans = None
                if scheme:
                    spans = [
                        (s + start, e + start, label) for s, e, label in tags_to_spans(tags, scheme)
                    ]
                found.append(TagPath(tags, float(numpy.exp(log_probs_np[row, rank])), spans))
            per_doc[doc_i].append(SentencePaths(start, end, found))
    for sentences in per_doc:
        sentences.sort(key=lambda sentence: sentence.start)
    return per_doc
