"""Nearest neighbours of a word's contextual string embeddings in different contexts
(Akbik et al. 2018, Table 4): the same word gets different embeddings by context.

    python benchmarks/scripts/cse_neighbours.py training/charlm_en/char_lm.msgpack \\
        corpus/conll03/train.spacy --word Washington \\
        --output benchmarks/results/cse_neighbours_washington.md

Every token of the first --limit docs is embedded with the pretrained LMs alone (equation 8,
no tagger). For one occurrence of the word per gold entity type (and one outside any
entity, if there is one), the --k tokens with the most similar embedding (cosine), other
than the word itself, are listed with their contexts. The last column counts how many of
the neighbours carry the same gold entity type as the occurrence: the LM was never shown
a label, so agreement means the context alone separates the senses. A last line gives the
cosine similarity between the listed occurrences themselves: how far context moved them.
"""

import argparse
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy
import spacy
from spacy.tokens import Doc, DocBin

from common import provenance

from spacy_lmcrf.ml.modules.char_lm import BiCharLM
from spacy_lmcrf.ml.modules.tensor_file import read_tensor_file

Occurrence = Tuple[int, int]  # (doc index, token index)


def embed_corpus(
    lm_path: Path, docs: Sequence[Doc], batch_size: int = 64
) -> Tuple[numpy.ndarray, List[Occurrence]]:
    """The contextual string embedding of every token of docs, row-normalised."""
    _, meta = read_tensor_file(lm_path)
    model = spacy.util.registry.resolve(
        {
            "m": {
                "@architectures": "spacy_lmcrf.ContextualStringEmbeddings.v1",
                "lm_path": str(lm_path),
                "hidden_size": BiCharLM.from_meta(meta, str(lm_path)).hidden_size,
            }
        }
    )["m"]
    model.initialize()
    rows, where = [], []
    for start in range(0, len(docs), batch_size):
        batch = docs[start : start + batch_size]
        for i, vectors in enumerate(model.predict(batch)):
            rows.append(numpy.asarray(vectors))
            where.extend((start + i, t) for t in range(len(batch[i])))
    matrix = (
        numpy.concatenate(rows) if rows else numpy.zeros((0, model.get_dim("nO")), dtype="float32")
    )
    norms = numpy.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / numpy.maximum(norms, 1e-12), where


def entity_type(doc: Doc, i: int) -> str:
    return doc[i].ent_type_ or "O"


def context(doc: Doc, i: int, width: int = 5) -> str:
    words = [t.text for t in doc[max(0, i - width) : i + width + 1]]
    j = i - max(0, i - width)
    words[j] = f"**{words[j]}**"
    prefix = "[..] " if i - width > 0 else ""
    suffix = " [..]" if i + width + 1 < len(doc) else ""
    return prefix + " ".join(words) + suffix


def pick_occurrences(docs: Sequence[Doc], where: Sequence[Occurrence], word: str) -> List[int]:
    """The first occurrence of word for each gold entity type (O included)."""
    chosen: Dict[str, int] = {}
    for row, (d, t) in enumerate(where):
        if docs[d][t].text == word:
            chosen.setdefault(entity_type(docs[d], t), row)
    return [chosen[key] for key in sorted(chosen)]


def neighbours(
    matrix: numpy.ndarray,
    docs: Sequence[Doc],
    where: Sequence[Occurrence],
    row: int,
    word: str,
    k: int,
) -> List[int]:
    scores = matrix @ matrix[row]
    order = numpy.argsort(-scores)
    found = []
    for other in order:
        d, t = where[other]
        if docs[d][t].text != word:
            found.append(int(other))
        if len(found) == k:
            break
    return found


def occurrence_similarities(
    matrix: numpy.ndarray,
    docs: Sequence[Doc],
    where: Sequence[Occurrence],
    rows: Sequence[int],
    word: str,
) -> str:
    """How much context moved the word's embedding: the cosine similarity of each pair of
    the listed occurrences (1.000 means the contexts changed nothing)."""
    types = [entity_type(docs[where[row][0]], where[row][1]) for row in rows]
    pairs = [
        f"{types[i]}–{types[j]} {float(matrix[rows[i]] @ matrix[rows[j]]):.3f}"
        for i in range(len(rows))
        for j in range(i + 1, len(rows))
    ]
    if not pairs:
        return f"Only one occurrence of {word!r} is listed, so there is no pair to compare."
    return (
        f"Cosine similarity between the listed occurrences of {word!r} (1.000 = the context "
        f"changed nothing): " + ", ".join(pairs) + "."
    )


def report(lm_path: Path, corpus: Path, word: str, k: int, limit: int) -> str:
    nlp = spacy.blank("en")
    docs = list(DocBin().from_disk(corpus).get_docs(nlp.vocab))[: limit or None]
    matrix, where = embed_corpus(lm_path, docs)
    rows = pick_occurrences(docs, where, word)
    if not rows:
        raise ValueError(f"{word!r} does not occur in the first {len(docs)} docs of {corpus}")
    lines = [
        f"# Nearest neighbours of {word!r} by contextual string embedding",
        "",
        f"LM: `{lm_path}`; corpus: `{corpus}` (first {len(docs)} docs, {len(where)} tokens); "
        "cosine similarity of equation (8)'s embeddings, no tagger. Entity types are the "
        "corpus's gold labels, never seen by the LM.",
        "",
        f"| context of {word} (gold type) | {k} nearest neighbours (gold type) | same type |",
        "|---|---|---|",
    ]
    for row in rows:
        d, t = where[row]
        query_type = entity_type(docs[d], t)
        found = neighbours(matrix, docs, where, row, word, k)
        described = "<br>".join(
            f"{context(docs[n_d], n_t)} ({entity_type(docs[n_d], n_t)})"
            for n_d, n_t in (where[n] for n in found)
        )
        same = sum(entity_type(docs[where[n][0]], where[n][1]) == query_type for n in found)
        lines.append(
            f"| {context(docs[d], t)} ({query_type}) | {described} | {same}/{len(found)} |"
        )
    lines += ["", occurrence_similarities(matrix, docs, where, rows, word)]
    info = provenance()
    lines += [
        "",
        f"command: `{info['command']}`; commit {info['commit']}; {info['cpu']}; {info['date']}",
        "",
    ]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "lm_path", type=Path, help="char_lm.msgpack from spacy lmcrf pretrain-char-lm"
    )
    parser.add_argument("corpus", type=Path, help=".spacy file with gold entities")
    parser.add_argument("--word", default="Washington")
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--limit", type=int, default=5000, help="docs to embed (0 = all)")
    parser.add_argument("--output", type=Path, default=None, help="write the markdown table here")
    args = parser.parse_args(argv)
    text = report(args.lm_path, args.corpus, args.word, args.k, args.limit)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf8")
    print(text)


if __name__ == "__main__":
    main()
