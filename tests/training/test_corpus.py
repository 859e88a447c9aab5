"""spacy_lmcrf.training.corpus: the joint configs' task corpora and batcher."""

import pytest
import spacy

from spacy_lmcrf.training.corpus import create_task_batcher, create_task_corpora

from ..util import chunk_examples, ner_examples, tag_examples, write_task_corpora


def test_task_batcher_cycles_smaller_corpora_and_needs_corpus_names(tmp_path):
    data = write_task_corpora(
        tmp_path, {"ner": ner_examples, "pos": tag_examples, "chunk": chunk_examples}
    )
    nlp = spacy.blank("en")
    read = create_task_corpora(
        {"ner": data / "ner.spacy", "pos": data / "pos.spacy", "chunk": None}
    )
    examples = list(read(nlp))
    assert [eg.reference.user_data["lmcrf_corpus"] for eg in examples[:2]] == ["ner", "pos"]
    assert len(examples) == 4 + 3  # four NER docs, three POS docs, no chunk docs
    batches = list(create_task_batcher(size=1)(examples))
    assert len(batches) == 2 * 4  # four turns: POS starts over after its three
    batches = list(create_task_batcher(size=1, cycle=False)(examples))
    assert len(batches) == 7
    with pytest.raises(ValueError, match="lmcrf_corpus"):
        list(create_task_batcher(size=2)(ner_examples(nlp)))
    with pytest.raises(ValueError, match="every path is null"):
        create_task_corpora({"ner": None})
