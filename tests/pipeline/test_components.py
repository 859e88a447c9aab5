"""Each component's overfitting + save/load round trip, the way spaCy tests its own."""

import subprocess
import sys

import numpy
import pytest
import spacy
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import make_tempdir, registry
from thinc.api import Model

from spacy_lmcrf.ml.models.crf_tagger import get_crf_module
from spacy_lmcrf.tags import allowed_transitions

from ..util import (
    NER_DATA,
    chunk_examples,
    make_nlp,
    ner_examples,
    tag_examples,
    train,
)

N_STEPS = 80


def _ner_output(doc):
    return [(e.start, e.end, e.label_) for e in doc.ents]


def _tag_output(doc):
    return [t.tag_ for t in doc]


def _chunk_output(doc):
    return [(s.start, s.end, s.label_) for s in doc.spans["chunks"]]


CASES = [
    pytest.param("lm_crf_ner", {}, ner_examples, _ner_output, id="ner"),
    pytest.param("lm_crf_tagger", {}, tag_examples, _tag_output, id="tagger"),
    pytest.param(
        "lm_crf_spans", {"spans_key": "chunks"}, chunk_examples, _chunk_output, id="spans"
    ),
]


def _gold_output(name, examples):
    if name == "lm_crf_ner":
        return [_ner_output(eg.reference) for eg in examples]
    if name == "lm_crf_tagger":
        return [_tag_output(eg.reference) for eg in examples]
    return [_chunk_output(eg.reference) for eg in examples]


@pytest.mark.slow
@pytest.mark.parametrize("factory,config,make_examples,output", CASES)
def test_overfitting_IO(factory, config, make_examples, output):
    nlp = make_nlp(factory, config)
    examples = make_examples(nlp)
    losses = train(nlp, examples, N_STEPS)
    assert losses[factory] < 0.05
    texts = [eg.reference.text for eg in examples]
    predicted = [output(doc) for doc in nlp.pipe(texts)]
    assert predicted == _gold_output(factory, examples)

    # save -> load in a fresh spacy.load gives identical output, scores included
    with make_tempdir() as tmp:
        nlp.to_disk(tmp)
        nlp2 = spacy.load(tmp)
        assert [output(doc) for doc in nlp2.pipe(texts)] == predicted
        if factory != "lm_crf_tagger":
            key = factory if factory == "lm_crf_ner" else "chunks"
            a = [doc.spans[key].attrs["scores"] for doc in nlp.pipe(texts)]
            b = [doc.spans[key].attrs["scores"] for doc in nlp2.pipe(texts)]
            for x, y in zip(a, b):
                numpy.testing.assert_array_equal(x, y)
    # bytes round trip
    nlp3 = spacy.blank("en")
    config = {k: v for k, v in nlp.config["components"][factory].items() if k != "factory"}
    nlp3.add_pipe(factory, config=config)
    nlp3.from_bytes(nlp.to_bytes())
    assert [output(doc) for doc in nlp3.pipe(texts)] == predicted

    # batched equals one by one
    one_by_one = [output(nlp(text)) for text in texts]
    batched = [output(doc) for doc in nlp.pipe(texts, batch_size=len(texts))]
    assert one_by_one == batched == predicted


@pytest.mark.slow
def test_ner_scores_are_probabilities():
    nlp = make_nlp("lm_crf_ner")
    train(nlp, ner_examples(nlp), N_STEPS)
    for doc in nlp.pipe([text for text, _ in NER_DATA]):
        group = doc.spans["lm_crf_ner"]
        scores = group.attrs["scores"]
        assert len(scores) == len(group) == len(doc.ents)
        assert [(s.start, s.end, s.label_) for s in group] == _ner_output(doc)
        assert all(0.5 < s <= 1.0 for s in scores)


@pytest.mark.slow
def test_lm_loss_is_reported_and_trains():
    nlp = make_nlp("lm_crf_ner")
    examples = ner_examples(nlp)
    nlp.initialize(lambda: examples)
    first = nlp.update(examples, sgd=spacy.util.registry.optimizers.get("Adam.v1")(0.01))
    assert first["lm_crf_ner_lm"] > 0
    losses = train(nlp, examples, N_STEPS)
    assert losses["lm_crf_ner_lm"] < first["lm_crf_ner_lm"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "tok2vec", [{"lm_weight": 0.0}, {"use_highway": False}, {"highway_depth": 2}]
)
def test_ablations_train(tok2vec):
    nlp = make_nlp("lm_crf_ner", tok2vec=tok2vec)
    losses = train(nlp, ner_examples(nlp), N_STEPS)
    assert losses["lm_crf_ner"] < 0.05
    assert ("lm_crf_ner_lm" in losses) == (tok2vec.get("lm_weight", 1.0) > 0)


@pytest.mark.slow
@pytest.mark.parametrize("pairwise", ["small", "large"])
@pytest.mark.parametrize("scheme", ["BIOES", "BILUO", "IOB2", "IOB1"])
def test_untrained_decoding_is_always_valid(scheme, pairwise):
    """Even random weights must decode to valid tag sequences and Doc spans."""
    nlp = make_nlp("lm_crf_ner", {"scheme": scheme, "model": {"pairwise": pairwise}})
    examples = ner_examples(nlp)
    nlp.initialize(lambda: examples)
    ner = nlp.get_pipe("lm_crf_ner")
    names = ner.tag_names
    allowed, start, end = allowed_transitions(names, scheme)
    module = ner.model.get_ref("crf_head").shims[0]._model
    rng = numpy.random.default_rng(0)
    import torch

    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.from_numpy(rng.normal(0, 3.0, p.shape).astype("float32")))
    texts = [
        " ".join(rng.choice(["a", "Berlin", "EU", "Peter", ".", "x"], size=n)) for n in range(1, 40)
    ]
    docs = list(nlp.make_doc(t) for t in texts)
    prediction = ner.predict(docs)
    for tags in prediction.tags:
        ids = [names.index(t) for t in tags]
        assert start[ids[0]] and end[ids[-1]]
        assert all(allowed[a, b] for a, b in zip(ids, ids[1:]))
    ner.set_annotations(docs, prediction)
    for doc in docs:
        for ent in doc.ents:
            assert 0 <= ent.start < ent.end <= len(doc)


@pytest.fixture(scope="module")
def trained_ner():
    nlp = make_nlp("lm_crf_ner")
    train(nlp, ner_examples(nlp), 30)
    return nlp


@pytest.mark.parametrize(
    "text",
    ["", "Berlin", "   ", "Berlin \n\n  Paris", "😀 Berlin 東京 Москва", "🤖" * 40, "a\tb"],
)
def test_odd_input(trained_ner, text):
    doc = trained_ner(text)
    assert len(doc) == len(trained_ner.make_doc(text))
    assert all(t.ent_iob_ in ("B", "I", "O") for t in doc)  # every token annotated
    assert len(doc.spans["lm_crf_ner"]) == len(doc.ents)


SPACE_TEXTS = ["   ", "\n", "Berlin\n\nParis", "Peter Blackburn \n\n lives in Berlin"]


def _prefer_tag(component, tag: str, score: float = 50.0) -> None:
    """Raise tag's score (pairwise "large": every row of the (L + 1) x L matrix) so
    far that, unconstrained, every token would take it."""
    import torch

    module = component.model.get_ref("crf_head").shims[0]._model
    with torch.no_grad():
        module.proj.bias.view(-1, module.n_tags)[:, component.tag_names.index(tag)] += score


@pytest.mark.parametrize(
    "factory,config,make_examples,preferred",
    [
        # each token its own entity
        ("lm_crf_ner", {}, ner_examples, {"S-ORG": 50.0}),
        # one entity over the whole text
        ("lm_crf_ner", {"scheme": "IOB2"}, ner_examples, {"B-ORG": 25.0, "I-ORG": 50.0}),
        ("lm_crf_spans", {"spans_key": "chunks", "scheme": "IOB1"}, chunk_examples, {"I-NP": 50.0}),
    ],
)
def test_no_span_includes_whitespace(factory, config, make_examples, preferred):
    nlp = make_nlp(factory, config)
    examples = make_examples(nlp)
    nlp.initialize(lambda: examples)
    component = nlp.get_pipe(factory)
    for tag, score in preferred.items():
        _prefer_tag(component, tag, score)
    key = component.cfg["spans_key"]
    for doc in nlp.pipe(SPACE_TEXTS):
        spans = doc.spans[key]
        assert not [span for span in spans if any(token.is_space for token in span)], doc.text
        assert {t.i for span in spans for t in span} == {t.i for t in doc if not t.is_space}
        assert all(0.5 < score <= 1.0 for score in spans.attrs["scores"])
        if factory == "lm_crf_ner":
            assert list(doc.ents) == list(spans)


def test_tagger_tags_whitespace():
    """Tags have no spans: whitespace tokens are tagged like any other (spaCy's tagger tags
    them too)."""
    nlp = make_nlp("lm_crf_tagger")
    examples = tag_examples(nlp)
    nlp.initialize(lambda: examples)
    _prefer_tag(nlp.get_pipe("lm_crf_tagger"), "NN")
    assert [t.tag_ for t in nlp("eggs \n\n ham")] == ["NN"] * 3


def test_long_doc_without_sentences(trained_ner):
    words = (["Peter", "lives", "in", "Berlin", "."] * 1000)[:5000]
    doc = spacy.tokens.Doc(trained_ner.vocab, words=words)
    assert not doc.has_annotation("SENT_START")
    doc = trained_ner(doc)
    assert len(doc) == 5000
    assert all(t.ent_iob_ in ("B", "I", "O") for t in doc)


def test_empty_batch_and_empty_docs_in_batch(trained_ner):
    docs = list(trained_ner.pipe(["", "Peter lives in Berlin", ""]))
    assert [len(d) for d in docs] == [0, 4, 0]
    assert list(trained_ner.pipe([])) == []
    # training on a batch of empty docs is a no-op, not an error
    eg = Example(trained_ner.make_doc(""), trained_ner.make_doc(""))
    assert trained_ner.update([eg])["lm_crf_ner"] == 0.0


def test_label_seen_only_at_prediction_time(trained_ner):
    """Evaluation with a gold label the model never saw counts as a miss, no crash."""
    doc = trained_ner.make_doc("Peter lives in Berlin")
    ref = spacy.tokens.Doc(
        trained_ner.vocab, words=doc.text.split(), ents=["B-PER", "O", "O", "B-CITY"]
    )
    scores = trained_ner.evaluate([Example(doc, ref)])
    assert "CITY" in scores["ents_per_type"]
    assert scores["ents_per_type"]["CITY"]["r"] == 0.0


def test_unknown_label_in_training_names_the_example(trained_ner):
    ref = spacy.tokens.Doc(trained_ner.vocab, words=["Peter", "lives"], ents=["B-ANIMAL", "O"])
    eg = Example(trained_ner.make_doc("Peter lives"), ref)
    with pytest.raises(
        ValueError, match=r"ANIMAL.*example 0.*Peter lives|example 0.*Peter lives.*ANIMAL"
    ):
        trained_ner.update([eg])


def test_overlapping_gold_spans_name_the_example():
    nlp = make_nlp("lm_crf_spans", {"spans_key": "chunks"})
    examples = chunk_examples(nlp)
    nlp.initialize(lambda: examples)
    ref = spacy.tokens.Doc(nlp.vocab, words="the big dog".split())
    ref.spans["chunks"] = [ref[0:2], ref[1:3]]
    ref.spans["chunks"][0].label_ = "NP"
    bad = Example(nlp.make_doc("the big dog"), ref)
    with pytest.raises(ValueError, match=r"example 1 \('the big dog'\)"):
        nlp.update([examples[0], bad])


def test_missing_gold_tags_are_not_trained_as_O():

    from spacy_lmcrf.ml.crf import crf_loss

    nlp = make_nlp("lm_crf_ner")
    examples = ner_examples(nlp)
    nlp.initialize(lambda: examples)
    ner = nlp.get_pipe("lm_crf_ner")
    words = "Peter Blackburn lives in Berlin .".split()
    # "Berlin" (and the final ".") carry no annotation at all
    ref = spacy.tokens.Doc(nlp.vocab, words=words, ents=["B-PER", "I-PER", "O", "O", None, None])
    eg = Example(nlp.make_doc(" ".join(words)), ref)
    scores = ner.model.predict([eg.predicted])
    (gold,) = ner._gold_groups(ner._gold_ids([eg]), scores)
    (group,) = scores.groups
    assert gold[0, 4:6].tolist() == [-1, -1]
    assert all(g >= 0 for g in gold[0, :4].tolist())
    loss, _ = ner.get_loss([eg], scores)
    expected = crf_loss(group.potentials, group.lengths, gold).sum().item()
    assert loss == pytest.approx(expected, rel=1e-5)
    as_o = gold.clone()
    as_o[0, 4:6] = ner.tag_names.index("O")
    assert loss < crf_loss(group.potentials, group.lengths, as_o).sum().item()
    # a doc without any NER annotation trains nothing
    unannotated = Example(
        nlp.make_doc("Peter lives"), spacy.tokens.Doc(nlp.vocab, words=["Peter", "lives"])
    )
    loss, _ = ner.get_loss([unannotated], ner.model.predict([unannotated.predicted]))
    assert loss == pytest.approx(0.0, abs=1e-5)


def test_misaligned_tokenization_is_handled():
    nlp = make_nlp("lm_crf_ner")
    examples = ner_examples(nlp)
    nlp.initialize(lambda: examples)
    ref = spacy.tokens.Doc(
        nlp.vocab, words=["New", "York", "is", "big"], ents=["B-LOC", "I-LOC", "O", "O"]
    )
    predicted = spacy.tokens.Doc(
        nlp.vocab, words=["New York", "is", "big"], spaces=[True, True, False]
    )
    losses = nlp.update([Example(predicted, ref)])
    assert numpy.isfinite(losses["lm_crf_ner"])


def test_labels_from_initialize_and_init_labels():
    nlp = make_nlp("lm_crf_ner")
    examples = ner_examples(nlp)
    nlp.initialize(lambda: examples)
    ner = nlp.get_pipe("lm_crf_ner")
    assert set(ner.labels) == {"PER", "LOC", "ORG", "MISC"}
    assert ner.label_data == list(ner.labels)
    nlp2 = make_nlp("lm_crf_ner")
    nlp2.config["initialize"]["components"]["lm_crf_ner"] = {
        "labels": ["PER", "LOC", "ORG", "MISC", "EXTRA"]
    }
    nlp2.initialize(lambda: examples)
    assert "EXTRA" in nlp2.get_pipe("lm_crf_ner").labels
    with pytest.raises(ValueError, match="after it was initialized"):
        nlp2.get_pipe("lm_crf_ner").add_label("NEW")


def test_no_labels_is_a_clear_error():
    nlp = make_nlp("lm_crf_ner")
    eg = Example(
        nlp.make_doc("a b"), spacy.tokens.Doc(nlp.vocab, words=["a", "b"], ents=["O", "O"])
    )
    with pytest.raises(ValueError, match="found no labels"):
        nlp.initialize(lambda: [eg])


def test_default_model_builds_with_add_pipe():
    nlp = spacy.blank("en")
    for factory in ("lm_crf_ner", "lm_crf_tagger", "lm_crf_spans"):
        nlp.add_pipe(factory)
    assert nlp.pipe_names == ["lm_crf_ner", "lm_crf_tagger", "lm_crf_spans"]


@pytest.mark.slow
def test_fresh_process_loads_through_entry_points(trained_ner):
    """spacy.load in a new interpreter finds the factories without importing spacy_lmcrf."""
    with make_tempdir() as tmp:
        trained_ner.to_disk(tmp)
        code = (
            "import sys, spacy; nlp = spacy.load(sys.argv[1]); "
            "print([(e.text, e.label_) for e in nlp('Peter Blackburn lives in Berlin .').ents])"
        )
        out = subprocess.run([sys.executable, "-c", code, str(tmp)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        expected = [
            (e.text, e.label_) for e in trained_ner("Peter Blackburn lives in Berlin .").ents
        ]
        assert out.stdout.strip() == str(expected)


def test_loading_does_not_unpickle_arbitrary_objects(trained_ner, tmp_path):
    import pickle

    import srsly

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with make_tempdir() as tmp:
        trained_ner.to_disk(tmp)
        model_path = tmp / "lm_crf_ner" / "model"
        msg = srsly.msgpack_loads(model_path.read_bytes())
        for node_shims in msg["shims"]:
            for i, shim_bytes in enumerate(node_shims):
                shim = srsly.msgpack_loads(shim_bytes)
                shim["state"] = pickle.dumps({"weight": Exploit()})
                node_shims[i] = srsly.msgpack_dumps(shim)
        model_path.write_bytes(srsly.msgpack_dumps(msg))
        with pytest.raises(Exception):  # noqa: B017 (any refusal: the point is the payload never runs)
            spacy.load(tmp)
    assert not marker.exists()


@registry.architectures("spacy_lmcrf.tests.HiddenWidth.v1")
def build_hidden_width(tok2vec: Model, known_at_init: bool) -> Model:
    """tok2vec, its output width (nO) unknown when the CRF is built: set at initialization
    when known_at_init (as TransformerListener's), else never (the CRF runs it to see)."""

    def init(model: Model, X=None, Y=None) -> Model:
        tok2vec.initialize(X=X)
        if known_at_init:
            model.set_dim("nO", tok2vec.get_dim("nO"))
        return model

    def forward(model: Model, docs, is_train: bool):
        return tok2vec(docs, is_train)

    return Model("hidden_width", forward, init=init, layers=[tok2vec], dims={"nO": None})


@pytest.mark.slow
@pytest.mark.parametrize("known_at_init", [True, False], ids=["nO_at_init", "no_nO"])
def test_crf_infers_its_input_width_at_initialize(known_at_init):
    width = 24
    tok2vec = {
        "@architectures": "spacy.Tok2Vec.v2",
        "embed": {
            "@architectures": "spacy.MultiHashEmbed.v2",
            "width": width,
            "attrs": ["NORM", "SHAPE"],
            "rows": [500, 100],
            "include_static_vectors": False,
        },
        "encode": {
            "@architectures": "spacy.MaxoutWindowEncoder.v2",
            "width": width,
            "depth": 1,
            "window_size": 1,
            "maxout_pieces": 2,
        },
    }
    model = {
        "@architectures": "spacy_lmcrf.CRFTagger.v1",
        "pairwise": "small",
        "tok2vec": {
            "@architectures": "spacy_lmcrf.tests.HiddenWidth.v1",
            "known_at_init": known_at_init,
            "tok2vec": tok2vec,
        },
    }
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("lm_crf_ner", config={"model": model})
    assert not ner.model.get_ref("tok2vec").has_dim("nO")
    examples = ner_examples(nlp)
    losses = [train(nlp, examples, 1)["lm_crf_ner"]]
    assert get_crf_module(ner.model).n_in == width
    optimizer = ner.create_optimizer()
    for _ in range(5):
        losses.append(nlp.update(examples, sgd=optimizer)["lm_crf_ner"])
    assert losses[-1] < losses[0]
    texts = [eg.reference.text for eg in examples]
    predicted = [_ner_output(doc) for doc in nlp.pipe(texts)]

    nlp2 = spacy.blank("en")
    ner2 = nlp2.add_pipe("lm_crf_ner", config={"model": model})
    assert get_crf_module(ner2.model).n_in != width  # a placeholder until loaded
    nlp2.from_bytes(nlp.to_bytes())
    assert get_crf_module(ner2.model).n_in == width
    assert [_ner_output(doc) for doc in nlp2.pipe(texts)] == predicted
    with make_tempdir() as tmp:
        nlp.to_disk(tmp)
        nlp3 = spacy.load(tmp)
        assert [_ner_output(doc) for doc in nlp3.pipe(texts)] == predicted


def test_gold_entity_across_a_window_cut_is_not_a_forbidden_path():
    """A doc without sentences is read in windows of max_length tokens; a gold entity
    the cut crosses is unknown on both sides instead of two halves the scheme forbids
    (which cost about 10,000 nats each and stopped training as diverged)."""
    nlp = make_nlp("lm_crf_ner", {"model": {"max_length": 4}})
    words = "the man Peter Blackburn Smith lives here".split()
    tags = ["O", "O", "B-PER", "I-PER", "I-PER", "O", "O"]
    example = Example(Doc(nlp.vocab, words=words), Doc(nlp.vocab, words=words, ents=tags))
    nlp.initialize(lambda: [example, *ner_examples(nlp)])
    losses = nlp.get_pipe("lm_crf_ner").update([example], losses={})
    assert 0 < losses["lm_crf_ner"] < 5 * len(words)
