"""The README's Python snippets run as written, in a fresh process, with the files they name
(my_data.jsonl, training/model-best) made first."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .util import make_nlp, ner_examples, train

ROOT = Path(__file__).parents[1]
SNIPPETS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_the_readme_has_its_snippets():
    assert len(SNIPPETS) == 3
    assert any("read_jsonl" in s for s in SNIPPETS) and any("add_pipe" in s for s in SNIPPETS)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = tmp_path_factory.mktemp("readme")
    records = [
        {
            "text": "Peter Blackburn lives in Berlin .",
            "entities": [[0, 15, "PER"], [25, 31, "LOC"]],
        },
        {"text": "EU rejects German call .", "entities": [[0, 2, "ORG"], [11, 17, "MISC"]]},
    ]
    (path / "my_data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    nlp = make_nlp("lm_crf_ner")
    train(nlp, ner_examples(nlp), 10)
    (path / "training").mkdir()
    nlp.to_disk(path / "training" / "model-best")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_snippet_runs(workdir, index):
    result = subprocess.run(
        [sys.executable, "-c", SNIPPETS[index]],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", "SPACY_LMCRF_TORCH_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    if "read_jsonl" in SNIPPETS[index]:
        import spacy
        from spacy.tokens import DocBin

        docs = list(DocBin().from_disk(workdir / "train.spacy").get_docs(spacy.blank("en").vocab))
        assert [[(e.text, e.label_) for e in d.ents] for d in docs] == [
            [("Peter Blackburn", "PER"), ("Berlin", "LOC")],
            [("EU", "ORG"), ("German", "MISC")],
        ]
