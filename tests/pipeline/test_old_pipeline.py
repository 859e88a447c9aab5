"""A pipeline saved before the package's layout changed (tests/data/pipeline_0_1, made by
tests/data/make_old_pipeline.py at the commit its JSON names) loads with the current code and
gives the same output: registered names and saved weights outlive module moves."""

import numpy
import spacy
import srsly

from ..data.make_old_pipeline import outputs
from ..util import TEST_DATA

DATA = TEST_DATA


def test_old_pipeline_loads_with_identical_output():
    expected = srsly.read_json(DATA / "pipeline_0_1.json")
    nlp = spacy.load(DATA / "pipeline_0_1")
    found = outputs(nlp, expected["texts"])
    for old, new in zip(expected["outputs"], found):
        for key in ("ents", "tags", "chunks"):
            assert new[key] == old[key]
        for key in ("ent_scores", "chunk_scores"):
            numpy.testing.assert_allclose(new[key], old[key], atol=1e-6)
    assert len(found) == len(expected["texts"])
