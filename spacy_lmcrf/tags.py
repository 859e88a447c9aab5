"""Tag schemes for sequence labeling: encoding, decoding and CRF constraints.

Spans are ``(start, end, label)`` tuples over token indices with ``end``
exclusive. Supported schemes:

* ``"IOB1"``: ``I-`` starts an entity unless it follows an entity of the same
  type, ``B-`` only marks the first token of an entity directly after another
  entity of the same type (the CoNLL-2003 release format).
* ``"IOB2"``: ``B-`` starts every entity, ``I-`` continues it.
* ``"BIOES"``: ``B-``, ``I-``, ``E-`` (end) and ``S-`` (single token).
* ``"BILUO"``: spaCy's naming of BIOES: ``L-`` (last) and ``U-`` (unit).

Decoding follows the chunk start/end rules of the CoNLL ``conlleval`` script
(with the usual IOBES extension), so invalid sequences are read the same way
the official evaluation reads them.
"""

from functools import lru_cache
from typing import Dict, FrozenSet, Iterable, List, Optional, Sequence, Tuple, cast

import numpy as np

Span = Tuple[int, int, str]

SCHEMES: Tuple[str, ...] = ("IOB1", "IOB2", "BIOES", "BILUO")
OUTSIDE = "O"

_PREFIXES: Dict[str, Tuple[str, ...]] = {
    "IOB1": ("B", "I"),
    "IOB2": ("B", "I"),
    "BIOES": ("B", "I", "E", "S"),
    "BILUO": ("B", "I", "L", "U"),
}
# Decoding and constraints work on BIOES letters; BILUO is a renaming of it.
_TO_BIOES: Dict[str, str] = {"B": "B", "I": "I", "E": "E", "S": "S", "L": "E", "U": "S"}
_FROM_BIOES: Dict[str, Dict[str, str]] = {
    "BIOES": {"B": "B", "I": "I", "E": "E", "S": "S"},
    "BILUO": {"B": "B", "I": "I", "E": "L", "S": "U"},
}
_CLOSED: FrozenSet[str] = frozenset({"O", "E", "S"})


def _check_scheme(scheme: str) -> str:
    """Return the scheme name, or raise ValueError naming the valid ones."""
    if scheme not in _PREFIXES:
        raise ValueError(f"Unknown tag scheme {scheme!r}: expected one of {', '.join(SCHEMES)}")
    return scheme


def tag_names(labels: Iterable[str], scheme: str) -> List[str]:
    """List the tags of a scheme: "O" first, then each label's prefixed tags."""
    prefixes = _PREFIXES[_check_scheme(scheme)]
    names = [OUTSIDE]
    seen = set()
    for label in labels:
        _check_label(label)
        if label in seen:
            raise ValueError(f"Duplicate label {label!r} in tag_names")
        seen.add(label)
        names.extend(f"{prefix}-{label}" for prefix in prefixes)
    return names


def _check_label(label: str) -> None:
    if not isinstance(label, str) or not label:
        raise ValueError(f"Invalid label {label!r}: expected a non-empty string")


def split_tag(tag: Optional[str], scheme: str) -> Tuple[str, str]:
    """Split a tag into (prefix, label); "O" and None give ("O", "").

    Labels may contain hyphens: only the first one separates the prefix.
    Raises ValueError for tags the scheme doesn't use.
    """
    if tag is None or tag == OUTSIDE:
        return OUTSIDE, ""
    prefixes = _PREFIXES[_check_scheme(scheme)]
    prefix, sep, label = tag.partition("-") if isinstance(tag, str) else ("", "", "")
    if not sep or not label or prefix not in prefixes:
        valid = ", ".join(f"{p}-LABEL" for p in prefixes)
        raise ValueError(f"Invalid {scheme} tag {tag!r}: expected 'O' or one of {valid}")
    return prefix, label


def _parse(tags: Sequence[Optional[str]], scheme: str) -> List[Tuple[str, str]]:
    """Split every tag, mapping prefixes to BIOES letters; errors name the position."""
    _check_scheme(scheme)
    parsed = []
    for i, tag in enumerate(tags):
        try:
            prefix, label = split_tag(tag, scheme)
        except ValueError as err:
            raise ValueError(f"Position {i}: {err}") from None
        parsed.append((_TO_BIOES.get(prefix, prefix), label))
    return parsed


def _chunk_ends(prev: str, cur: str, prev_label: str, label: str) -> bool:
    """conlleval's endOfChunk: does a chunk end between prev and cur?"""
    if prev == OUTSIDE:
        return False
    if prev_label != label or prev in ("E", "S"):
        return True
    return cur in ("B", "S", OUTSIDE)


def _chunk_starts(prev: str, cur: str, prev_label: str, label: str) -> bool:
    """conlleval's startOfChunk: does a chunk start at cur?"""
    if cur == OUTSIDE:
        return False
    if prev_label != label or cur in ("B", "S"):
        return True
    return prev in _CLOSED


def tags_to_spans(tags: Sequence[Optional[str]], scheme: str) -> List[Span]:
    """Decode tags into spans the way conlleval does; None counts as "O"."""
    spans: List[Span] = []
    start: Optional[int] = None
    prev, prev_label = OUTSIDE, ""
    for i, (cur, label) in enumerate(_parse(tags, scheme)):
        if start is not None and _chunk_ends(prev, cur, prev_label, label):
            spans.append((start, i, prev_label))
            start = None
        if _chunk_starts(prev, cur, prev_label, label):
            start = i
        prev, prev_label = cur, label
    if start is not None:
        spans.append((start, len(tags), prev_label))
    return spans


def check_spans(length: int, spans: Iterable[Span]) -> List[Span]:
    """Validate spans against a sequence length; return them sorted.

    Raises ValueError naming empty, out-of-range or overlapping spans.
    """
    spans = [cast(Span, tuple(span)) for span in spans]
    bad = [span for span in spans if not _is_valid_span(span, length)]
    if bad:
        raise ValueError(
            f"Invalid spans for a sequence of length {length} (empty, out of "
            f"range or without a label): {bad}"
        )
    result = sorted((int(s), int(e), label) for s, e, label in spans)
    overlaps = [(a, b) for a, b in zip(result, result[1:]) if b[0] < a[1]]
    if overlaps:
        raise ValueError(f"Overlapping spans: {overlaps}")
    return result


def _is_valid_span(span: tuple, length: int) -> bool:
    return (
        len(span) == 3
        and all(isinstance(x, (int, np.integer)) for x in span[:2])
        and 0 <= span[0] < span[1] <= length
        and isinstance(span[2], str)
        and bool(span[2])
    )


def spans_to_tags(
    length: int,
    spans: Iterable[Span],
    scheme: str,
    missing: Optional[Sequence[bool]] = None,
) -> List[Optional[str]]:
    """Encode spans as tags; tokens flagged in `missing` get None."""
    _check_scheme(scheme)
    checked = check_spans(length, spans)
    tags: List[Optional[str]] = [OUTSIDE] * length
    prev_end, prev_label = -1, ""
    for start, end, label in checked:
        for i in range(start, end):
            tags[i] = f"{_span_prefix(i, start, end, scheme)}-{label}"
        if scheme == "IOB1" and prev_end == start and prev_label == label:
            tags[start] = f"B-{label}"
        prev_end, prev_label = end, label
    if missing is not None:
        if len(missing) != length:
            raise ValueError(f"Length of missing ({len(missing)}) differs from length ({length})")
        tags = [None if miss else tag for tag, miss in zip(tags, missing)]
    return tags


def _span_prefix(i: int, start: int, end: int, scheme: str) -> str:
    """Prefix of token i in span [start, end); the caller applies IOB1's B- rule."""
    if scheme == "IOB1":
        return "I"
    if scheme == "IOB2":
        return "B" if i == start else "I"
    if end - start == 1:
        letter = "S"
    elif i == start:
        letter = "B"
    elif i == end - 1:
        letter = "E"
    else:
        letter = "I"
    return _FROM_BIOES[scheme][letter]


def convert_tags(
    tags: Sequence[Optional[str]], from_scheme: str, to_scheme: str
) -> List[Optional[str]]:
    """Convert tags between schemes via spans; None (missing) stays None."""
    spans = tags_to_spans(tags, from_scheme)
    missing = [tag is None for tag in tags]
    return spans_to_tags(len(tags), spans, to_scheme, missing=missing)


def _may_follow(prev: Optional[Tuple[str, str]], cur: Tuple[str, str], scheme: str) -> bool:
    """Whether `cur` may follow `prev` (None: sequence start) in a valid encoding."""
    prefix, label = cur
    in_same_type = prev is not None and prev[0] != OUTSIDE and prev[1] == label
    if scheme == "IOB1":
        # B- only separates two adjacent entities of the same type.
        return prefix != "B" or in_same_type
    if scheme == "IOB2":
        return prefix != "I" or in_same_type
    if prev is None or prev[0] in _CLOSED:
        return prefix in ("O", "B", "S")
    return prefix in ("I", "E") and label == prev[1]


def allowed_transitions(
    tag_names: Sequence[str], scheme: Optional[str]
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (allowed, start, end) boolean masks for a CRF over `tag_names`.

    allowed[i, j] says whether tag j may follow tag i; start and end say which
    tags may begin and end a sequence. The allowed sequences are exactly the
    ones spans_to_tags can produce. scheme=None allows everything (e.g. POS).
    """
    n_tags = len(tag_names)
    if scheme is None:
        return (
            np.ones((n_tags, n_tags), dtype=bool),
            np.ones((n_tags,), dtype=bool),
            np.ones((n_tags,), dtype=bool),
        )
    parsed = _parse(tag_names, scheme)
    if len(set(tag_names)) != n_tags:
        raise ValueError(f"Duplicate tag names in {list(tag_names)}")
    allowed = np.array(
        [[_may_follow(prev, cur, scheme) for cur in parsed] for prev in parsed],
        dtype=bool,
    ).reshape((n_tags, n_tags))
    start = np.array([_may_follow(None, cur, scheme) for cur in parsed], dtype=bool)
    if scheme in ("BIOES", "BILUO"):
        end = np.array([prefix in _CLOSED for prefix, _ in parsed], dtype=bool)
    else:
        end = np.ones((n_tags,), dtype=bool)
    return allowed, start, end


def chunk_boundaries(
    tag_names: Sequence[str], scheme: str
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (opens_first, opens, closes): where tags_to_spans puts chunk edges.

    opens_first[j] says whether tag j at the first position starts a chunk,
    opens[i, j] whether tag j after tag i does, and closes[i, j] whether a
    chunk open at tag i ends before tag j. Defined for every pair, allowed or
    not, so that invalid sequences are read as tags_to_spans reads them.
    """
    parsed = _parse(tag_names, scheme)
    opens_first = np.array(
        [_chunk_starts(OUTSIDE, cur, "", label) for cur, label in parsed], dtype=bool
    )
    opens = np.array(
        [[_chunk_starts(p, c, pl, cl) for c, cl in parsed] for p, pl in parsed], dtype=bool
    ).reshape((len(parsed), len(parsed)))
    closes = np.array(
        [[_chunk_ends(p, c, pl, cl) for c, cl in parsed] for p, pl in parsed], dtype=bool
    ).reshape((len(parsed), len(parsed)))
    return opens_first, opens, closes


def chunks_from_tag_ids(
    tag_ids: np.ndarray,
    lengths: np.ndarray,
    opens_first: np.ndarray,
    opens: np.ndarray,
    closes: np.ndarray,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The chunks tags_to_spans decodes, for rows of tag indices all at once.

    tag_ids (np.ndarray): (B, T) int, row b's tags at positions < lengths[b].
    lengths (np.ndarray): (B,) int, each row's length, 1 to T.
    opens_first, opens, closes (np.ndarray): chunk_boundaries of the tags' names.
    RETURNS (Tuple[np.ndarray, np.ndarray, np.ndarray]): the row, start and end
        (exclusive) of each chunk, (N,) each, ordered by row and start. A chunk's
        label is its first tag's.
    """
    tag_ids = np.asarray(tag_ids, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    n_rows, n_steps = tag_ids.shape
    valid = np.arange(n_steps)[None, :] < lengths[:, None]
    prev, cur = tag_ids[:, :-1], tag_ids[:, 1:]
    starts = np.empty((n_rows, n_steps), dtype=bool)
    starts[:, 0] = opens_first[tag_ids[:, 0]]
    starts[:, 1:] = opens[prev, cur]
    starts &= valid
    # ends[b, t]: a chunk open at t - 1 ends before t (always at the row's end)
    ends = np.zeros((n_rows, n_steps + 1), dtype=bool)
    ends[:, 1:n_steps] = closes[prev, cur] & valid[:, 1:]
    ends[np.arange(n_rows), lengths] = True
    row, start = np.nonzero(starts)
    # each chunk ends at the first end after its start, in its own row (every row
    # has one at its length), found in the flattened, sorted end positions
    end_rows, end_steps = np.nonzero(ends)
    flat_ends = end_rows * (n_steps + 1) + end_steps
    flat_starts = row * (n_steps + 1) + start
    end = flat_ends[np.searchsorted(flat_ends, flat_starts, side="right")] - row * (n_steps + 1)
    return row, start, end


@lru_cache(maxsize=16)
def _cut_tables(tag_names: Tuple[str, ...], scheme: str) -> Tuple[np.ndarray, ...]:
    """(labels, may_start, may_end, opens_first, opens, closes) over tag_names: each tag's
    label ("" for O), which tags may begin and end a sequence, and the chunk edges."""
    labels = np.array([split_tag(name, scheme)[1] for name in tag_names], dtype=object)
    _, may_start, may_end = allowed_transitions(tag_names, scheme)
    return (labels, may_start, may_end, *chunk_boundaries(tag_names, scheme))


def unknown_across_cuts(
    tag_ids: Sequence[int], cuts: Iterable[int], tag_names: Sequence[str], scheme: str
) -> np.ndarray:
    """The gold tag indices of a doc (-1: unknown) made valid for sequences that start
    at cuts (sentences, or max_length windows, that the CRF reads separately): cut in
    two, a chunk's halves are tag sequences the scheme forbids (I- or E- first, B- or
    I- last), whose loss is about 10,000 nats. So a chunk a cut crosses is made unknown
    on both sides; a chunk that starts at a cut with a tag no sequence may start with
    (IOB1's B-, after a chunk of its label) gets the tag that starts it there (I-);
    and a chunk next to unknown tags across the cut, whose tags could not begin (or
    end) a sequence, is made unknown too.

    tag_ids (Sequence[int]): the doc's gold tag indices into tag_names, -1 unknown.
    cuts (Iterable[int]): the positions where a sequence starts, 0 < cut < len.
    RETURNS (np.ndarray): the new tag indices.
    """
    ids = np.array(tag_ids, dtype=np.int64)
    labels, may_start, may_end, opens_first, opens, closes = _cut_tables(tuple(tag_names), scheme)
    n = len(ids)
    for cut in sorted(set(cuts)):
        if not 0 < cut < n:
            continue
        before, after = int(ids[cut - 1]), int(ids[cut])
        crosses = before >= 0 and after >= 0 and labels[after] and not closes[before, after]
        crosses = crosses and bool(labels[before])
        if before >= 0 and after >= 0 and opens[before, after] and not may_start[after]:
            after = ids[cut] = _restart_tag(ids, cut, labels, may_start, opens_first, closes)
        if after >= 0 and (crosses or not may_start[after]):
            end = cut
            while end + 1 < n and ids[end + 1] >= 0 and not closes[ids[end], ids[end + 1]]:
                end += 1
            ids[cut : end + 1] = -1
        if before >= 0 and (crosses or not may_end[before]):
            start = cut - 1
            while start > 0 and ids[start - 1] >= 0 and not opens[ids[start - 1], ids[start]]:
                start -= 1
            ids[start:cut] = -1
    return ids


def _restart_tag(
    ids: np.ndarray,
    cut: int,
    labels: np.ndarray,
    may_start: np.ndarray,
    opens_first: np.ndarray,
    closes: np.ndarray,
) -> int:
    """The tag that starts ids[cut]'s chunk at a sequence's first position, with the
    same label and the same edge before the next tag; ids[cut] if there is none."""
    tag = int(ids[cut])
    following = int(ids[cut + 1]) if cut + 1 < len(ids) else -1
    for other in range(len(labels)):
        if (
            labels[other] == labels[tag]
            and may_start[other]
            and opens_first[other]
            and (following < 0 or closes[other, following] == closes[tag, following])
        ):
            return other
    return tag


def biluo_to_spans_and_missing(
    tags: Sequence[Optional[str]],
) -> Tuple[List[Span], List[bool]]:
    """Read spaCy's aligned NER tags (Example.get_aligned_ner) into spans.

    "-" and None mark missing tokens. An entity broken by a missing token is
    dropped and its tokens are flagged missing; any other malformed sequence
    raises ValueError naming the position.
    """
    spans: List[Span] = []
    missing = [tag is None or tag == "-" for tag in tags]
    open_start: Optional[int] = None
    label = ""
    # After a missing token, I-/L- tags may continue an entity we can't see:
    # `broken` holds its label, or "" when any label may continue.
    broken: Optional[str] = None
    for i, tag in enumerate(tags):
        if missing[i]:
            if open_start is not None:
                for j in range(open_start, i):
                    missing[j] = True
                broken, open_start = label, None
            else:
                broken = ""
            continue
        assert tag is not None  # None is missing, handled above
        prefix, tag_label = _split_biluo(tag, i)
        if open_start is not None:
            if prefix in ("I", "L") and tag_label == label:
                if prefix == "L":
                    spans.append((open_start, i + 1, label))
                    open_start = None
                continue
            raise ValueError(
                f"Position {i}: entity B-{label} opened at position {open_start} "
                f"is not closed by L-{label} before {tag!r}"
            )
        if prefix in ("I", "L"):
            if broken is None or broken not in ("", tag_label):
                raise ValueError(
                    f"Position {i}: {tag!r} outside an entity (no B-{tag_label} before it)"
                )
            missing[i] = True
            broken = None if prefix == "L" else tag_label
            continue
        broken = None
        if prefix == "B":
            open_start, label = i, tag_label
        elif prefix == "U":
            spans.append((i, i + 1, tag_label))
    if open_start is not None:
        raise ValueError(f"Position {open_start}: entity B-{label} is not closed by L-{label}")
    return spans, missing


def _split_biluo(tag: str, position: int) -> Tuple[str, str]:
    try:
        return split_tag(tag, "BILUO")
    except ValueError as err:
        raise ValueError(f"Position {position}: {err}") from None
