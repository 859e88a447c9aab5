"""Build tests/data/pipeline_0_1 and its expected outputs (run at the commit named in
tests/data/pipeline_0_1.json): a tiny trained pipeline saved before issue 17's layout move,
which test_old_pipeline.py loads with the current code and compares output for output.

    python tests/data/make_old_pipeline.py
"""

import shutil
import subprocess
import sys
from pathlib import Path

import srsly
import torch
from thinc.api import fix_random_seed

ROOT = Path(__file__).parents[2]
sys.path.insert(0, str(ROOT))

import spacy  # noqa: E402

from tests.util import (  # noqa: E402
    TINY_TOK2VEC,
    chunk_examples,
    ner_examples,
    tag_examples,
    train,
)

OUT = Path(__file__).parent / "pipeline_0_1"
TEXTS = [
    "Peter Blackburn lives in Berlin .",
    "EU rejects German call to boycott British lamb .",
    "The dog barked loudly",
    "Angela Merkel met Emmanuel Macron in Paris",
    "He reckons the current account deficit will narrow",
]
WORD_CHAR = {
    "@architectures": "spacy_lmcrf.WordCharTok2Vec.v1",
    "word_embed": {"@architectures": "spacy_lmcrf.WordEmbedding.v1", "width": 16, "min_freq": 1},
    "char_embed": {
        "@architectures": "spacy_lmcrf.CharCNN.v1",
        "char_dim": 8,
        "filters": 8,
        "dropout": 0.0,
    },
    "encoder": {"@architectures": "spacy_lmcrf.BiLSTMEncoder.v1", "width": 16},
    "max_length": 128,
}
BIGRU = {
    **WORD_CHAR,
    "encoder": {"@architectures": "spacy_lmcrf.BiGRUEncoder.v1", "width": 16, "depth": 2},
}


def outputs(nlp, texts=TEXTS):
    result = []
    for doc in nlp.pipe(texts):
        result.append(
            {
                "ents": [[e.start, e.end, e.label_] for e in doc.ents],
                "ent_scores": [float(x) for x in doc.spans["lm_crf_ner"].attrs["scores"]],
                "tags": [t.tag_ for t in doc],
                "chunks": [[s.start, s.end, s.label_] for s in doc.spans["chunks"]],
                "chunk_scores": [float(x) for x in doc.spans["chunks"].attrs["scores"]],
            }
        )
    return result


def main():
    fix_random_seed(0)
    torch.manual_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("lm_crf_ner", config={"model": {"tok2vec": TINY_TOK2VEC}})
    nlp.add_pipe("lm_crf_tagger", config={"model": {"tok2vec": BIGRU}})
    nlp.add_pipe("lm_crf_spans", config={"spans_key": "chunks", "model": {"tok2vec": WORD_CHAR}})
    examples = []
    for make in (ner_examples, tag_examples, chunk_examples):
        examples.extend(make(nlp))
    train(nlp, examples, 30)
    if OUT.exists():
        shutil.rmtree(OUT)
    nlp.to_disk(OUT)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    )
    srsly.write_json(
        OUT.parent / "pipeline_0_1.json",
        {
            "commit": commit.stdout.strip(),
            "texts": TEXTS,
            "outputs": outputs(spacy.load(OUT)),
        },
    )


if __name__ == "__main__":
    main()
