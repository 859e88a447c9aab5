"""Position-aware self-attention and the context fusion layer (Wei et al., Section IV):
the masks and biases do what the equations say, one-token and padded batches give no
NaN, spacy_lmcrf.PSATok2Vec.v1 trains under a CRF and round-trips, its attention can
be looked at and drawn."""

import math

import numpy
import pytest
import spacy
import torch
from spacy.tokens import Doc
from spacy.util import make_tempdir
from thinc.api import Adam

from spacy_lmcrf.attention import get_attention
from spacy_lmcrf.ml.models.context_fusion import build_context_fusion
from spacy_lmcrf.ml.models.word_char_tok2vec import get_module
from spacy_lmcrf.ml.modules import psa as psa_module
from spacy_lmcrf.ml.modules.psa import ContextFusion, PositionAwareSelfAttention

from ..benchmarks.test_benchmarks import bench
from ..util import ner_examples

WORD = {"@architectures": "spacy_lmcrf.WordEmbedding.v1", "width": 16, "min_freq": 1}
CHAR = {"@architectures": "spacy_lmcrf.CharBiLSTM.v1", "char_dim": 8, "hidden": 6}
BILSTM = {
    "@architectures": "spacy_lmcrf.BiLSTMEncoder.v1",
    "width": 16,
    "input_dropout": 0.0,
    "output_dropout": 0.0,
}
FUSION = {"@architectures": "spacy_lmcrf.ContextFusion.v1", "dropout": 0.0}
NO_BIASES = {**FUSION, "self_disabled_mask": False, "relative_position": False, "gaussian": False}


def psa(fusion=FUSION, **switches):
    return {
        "@architectures": "spacy_lmcrf.PSATok2Vec.v1",
        "word_embed": WORD,
        "char_embed": CHAR,
        "encoder": BILSTM,
        "fusion": fusion,
        **switches,
    }


def _attention(d, **settings):
    defaults = dict(
        self_disabled_mask=True,
        relative_position=True,
        gaussian=True,
        max_distance=2,
        window=10.0,
        position_weight=1 / 3,
        gaussian_weight=1 / 3,
    )
    attention = PositionAwareSelfAttention(**{**defaults, **settings})
    attention.resize(d)
    return attention


def _ents(docs):
    return [[(e.start, e.end, e.label_) for e in doc.ents] for doc in docs]


def _nlp(tok2vec):
    nlp = spacy.blank("en")
    nlp.add_pipe("lm_crf_ner", config={"model": {"pairwise": "small", "tok2vec": tok2vec}})
    return nlp


def _train(nlp, n_steps=100):
    examples = ner_examples(nlp)
    nlp.initialize(lambda: examples)
    optimizer = Adam(0.01)
    for _ in range(n_steps):
        losses = nlp.update(examples, sgd=optimizer)
    return examples, losses


@pytest.fixture(scope="module")
def trained_psa():
    torch.manual_seed(0)
    nlp = _nlp(psa())
    examples, losses = _train(nlp)
    return nlp, examples, losses


@pytest.mark.parametrize("self_disabled_mask", [True, False])
def test_rows_sum_to_one_over_the_keys_a_token_may_attend_to(self_disabled_mask):
    torch.manual_seed(0)
    attention = _attention(6, self_disabled_mask=self_disabled_mask)
    lengths = torch.tensor([5, 3, 1])
    with torch.no_grad():
        weights = attention.weights(torch.randn(3, 5, 6), lengths)
    for b, n in enumerate(lengths.tolist()):
        allowed = torch.ones(5, 5, dtype=torch.bool)
        allowed[n:] = allowed[:, n:] = False
        if self_disabled_mask:
            allowed.fill_diagonal_(False)
        assert bool((weights[b][~allowed] == 0).all())  # padding (and itself under M) get nothing
        sums = weights[b].sum(-1)
        for i in range(5):
            expected = 1.0 if allowed[i].any() else 0.0  # one token under M: nothing to attend to
            assert math.isclose(float(sums[i]), expected, abs_tol=1e-6), (b, i)
        if not self_disabled_mask:
            assert bool((weights[b].diagonal()[:n] > 0).all())


def test_relative_position_and_gaussian_biases_by_hand():
    attention = _attention(2, max_distance=1, window=2.0, position_weight=0.5, gaussian_weight=0.25)
    with torch.no_grad():
        attention.distance_embed.copy_(
            torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0]])
        )  # W3[-1], W3[0], W3[+1]
        attention.score.weight.zero_()  # w = 0: the score is the positional bias alone
    x = torch.tensor([[[1.0, 2.0], [0.0, 1.0], [3.0, -1.0]]])
    # P_ij = x_i . W3[clip(i - j, -1, 1)]; e.g. P_02: i - j = -2 -> W3[-1] = (1, 0) -> 1
    P = torch.tensor([[2.0, 1.0, 1.0], [1.0, 1.0, 0.0], [5.0, 5.0, -1.0]])
    # G_ij = -(i - j)^2 / (2 eps^2), eps = k / 2 = 1
    G = torch.tensor([[0.0, -0.5, -2.0], [-0.5, 0.0, -0.5], [-2.0, -0.5, 0.0]])
    torch.testing.assert_close(attention.scores(x)[0], 0.5 * P + 0.25 * G)
    weights = attention.weights(x, torch.tensor([3]))[0]
    # row 0 under M: keys 1 and 2 with scores 0.5 - 0.125 and 0.5 - 0.5
    torch.testing.assert_close(
        weights[0], torch.tensor([0.0, math.exp(0.375), 1.0]) / (math.exp(0.375) + 1)
    )


@pytest.mark.parametrize("dense_fill", [0.0, 2.0], ids=["padded-grid", "allowed-pairs"])
def test_additive_score_is_equation_6_on_allowed_pairs(dense_fill, monkeypatch):
    monkeypatch.setattr(psa_module, "DENSE_FILL", dense_fill)
    torch.manual_seed(0)
    attention = _attention(4, relative_position=False, gaussian=False)
    x = torch.randn(2, 3, 4)
    allowed = attention.allowed(torch.tensor([3, 2]), 3)
    with torch.no_grad():
        scores = attention.scores(x, allowed)
        W1, W2, b, w = (
            attention.query.weight,
            attention.key.weight,
            attention.key.bias,
            attention.score.weight[0],
        )
        for n in range(2):
            for i in range(3):
                for j in range(3):
                    expected = (
                        float(w @ torch.tanh(W1 @ x[n, i] + W2 @ x[n, j] + b))
                        if allowed[n, i, j]
                        else -1e4
                    )
                    assert math.isclose(
                        float(scores[n, i, j]), expected, rel_tol=1e-5, abs_tol=1e-6
                    ), (n, i, j)


def test_paper_gaussian_window_and_switches():
    fusion = build_context_fusion(relative_position=False, gaussian_weight=1.0)  # k = 10: eps = 5
    fusion.resize(3)
    attention = fusion.attention
    with torch.no_grad():
        attention.score.weight.zero_()
        scores = attention.scores(torch.randn(1, 12, 3))[0]
    assert math.isclose(float(scores[0, 10]), -100 / 50, rel_tol=1e-6)
    assert math.isclose(float(scores[4, 2]), -4 / 50, rel_tol=1e-6)
    off = _attention(3, relative_position=False, gaussian=False)
    assert not hasattr(off, "distance_embed")
    assert bool((off.positional_bias(torch.randn(2, 4, 3)) == 0).all())


def _fusion(d=5, group_size=32):
    torch.manual_seed(1)
    fusion = ContextFusion(_attention(d), dropout=0.0, group_size=group_size)
    fusion.resize(d)
    return fusion


def test_one_token_and_padded_batches_give_no_nan():
    fusion = _fusion()
    x = torch.randn(3, 4, 5, requires_grad=True)
    lengths = torch.tensor([4, 1, 2])
    out = fusion(x, lengths)
    out.sum().backward()
    assert bool(torch.isfinite(out).all()) and bool(torch.isfinite(x.grad).all())
    assert all(bool(torch.isfinite(p.grad).all()) for p in fusion.parameters())
    assert bool((out[1, 1:] == 0).all()) and bool((out[2, 2:] == 0).all())  # padding stays zero
    attended, _ = fusion.attention(x[1:2, :1], lengths[1:2])
    assert bool((attended == 0).all())  # the one token attends to nothing
    alone = fusion(torch.randn(1, 1, 5), torch.tensor([1]))
    assert bool(torch.isfinite(alone).all())


def test_padding_and_grouping_do_not_change_a_sequence():
    x = torch.randn(3, 6, 5)
    lengths = torch.tensor([2, 6, 4])
    grouped = _fusion(group_size=1)(x, lengths)
    together = _fusion(group_size=32)(x, lengths)
    torch.testing.assert_close(grouped, together)
    alone = _fusion()(x[0:1, :2], lengths[0:1])
    torch.testing.assert_close(together[0, :2], alone[0])


@pytest.mark.parametrize(
    "tok2vec",
    [
        pytest.param(psa(fuse_input=False), id="second-layer-only"),
        pytest.param(psa(NO_BIASES), id="no-positional-bias"),
        pytest.param(psa(fuse_input=False, fuse_output=False), id="baseline(all-off)"),
    ],
)
@pytest.mark.slow
def test_overfitting_IO(tok2vec):
    nlp = _nlp(tok2vec)
    _check_overfit_and_round_trip(nlp, tok2vec, *_train(nlp))


@pytest.mark.slow
def test_overfitting_IO_full_psa(trained_psa):
    _check_overfit_and_round_trip(*trained_psa[:1], psa(), *trained_psa[1:])


def _check_overfit_and_round_trip(nlp, tok2vec, examples, losses):
    assert losses["lm_crf_ner"] < 0.1
    texts = [eg.reference.text for eg in examples]
    predicted = _ents(nlp.pipe(texts))
    assert predicted == _ents(eg.reference for eg in examples)
    with make_tempdir() as tmp:
        nlp.to_disk(tmp)
        assert _ents(spacy.load(tmp).pipe(texts)) == predicted
    nlp2 = _nlp(
        tok2vec
    )  # never initialized: the fusion layers take their sizes from the saved state
    nlp2.from_bytes(nlp.to_bytes())
    assert _ents(nlp2.pipe(texts)) == predicted


def test_fusion_layers_are_sized_to_their_inputs_and_all_off_is_the_baseline():
    nlp = _nlp(psa())
    nlp.initialize(lambda: ner_examples(nlp))
    module = get_module(nlp.get_pipe("lm_crf_ner").model.get_ref("tok2vec"))
    assert module.input_fusion.width == 16 + 12 and module.output_fusion.width == 16
    assert module.input_fusion.attention is not module.output_fusion.attention
    baseline = _nlp(psa(fuse_input=False, fuse_output=False))
    word_char = _nlp(
        {
            "@architectures": "spacy_lmcrf.WordCharTok2Vec.v1",
            "word_embed": WORD,
            "char_embed": CHAR,
            "encoder": BILSTM,
        }
    )
    shapes = [
        {
            k: tuple(v.shape)
            for k, v in get_module(n.get_pipe("lm_crf_ner").model.get_ref("tok2vec"))
            .state_dict()
            .items()
        }
        for n in (baseline, word_char)
    ]
    assert shapes[0] == shapes[1]


@pytest.mark.slow
def test_get_attention_and_heatmap(trained_psa, tmp_path):
    nlp = trained_psa[0]
    text = "Peter Blackburn lives in Berlin ."
    weights = get_attention(nlp, text)
    assert set(weights) == {"input", "output"}
    for matrix in weights.values():
        assert matrix.shape == (6, 6)
        numpy.testing.assert_allclose(matrix.sum(1), 1.0, rtol=1e-5)
        assert (matrix.diagonal() == 0).all()
    doc = Doc(
        nlp.vocab,
        words=["Peter", "lives", ".", "Berlin", "!"],
        sent_starts=[True, False, False, True, False],
    )
    matrix = get_attention(nlp, doc)["output"]
    assert (matrix[:3, 3:] == 0).all() and (
        matrix[3:, :3] == 0
    ).all()  # sentences do not see each other
    numpy.testing.assert_allclose(matrix.sum(1), 1.0, rtol=1e-5)
    single = get_attention(nlp, "Berlin")
    assert all(m.shape == (1, 1) and not numpy.isnan(m).any() for m in single.values())
    assert get_attention(nlp, "")["input"].shape == (0, 0)
    assert nlp("Peter lives in Berlin").ents  # looking does not change the pipeline

    model = tmp_path / "model"
    nlp.to_disk(model)
    heatmap = bench("attention_heatmap")
    out = tmp_path / "attention.png"
    assert heatmap.main([str(model), text, str(out), "--title", "tiny test model"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    focus = tmp_path / "focus.png"
    assert (
        heatmap.main(
            [str(model), text, str(focus), "--focus", "lives", "--component", "lm_crf_ner"]
        )
        == 0
    )
    assert focus.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert heatmap.main([str(model), text, str(focus), "--focus", "Paris"]) == 1


def test_get_attention_names_what_is_missing():
    plain = _nlp(
        {"@architectures": "spacy_lmcrf.WordCharTok2Vec.v1", "word_embed": WORD, "encoder": BILSTM}
    )
    plain.initialize(lambda: ner_examples(plain))
    with pytest.raises(ValueError, match="No PSA tok2vec"):
        get_attention(plain, "Peter lives in Berlin")
    baseline = _nlp(psa(fuse_input=False, fuse_output=False))
    baseline.initialize(lambda: ner_examples(baseline))
    with pytest.raises(ValueError, match="switched off"):
        get_attention(baseline, "Peter lives in Berlin")


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="max_distance"):
        build_context_fusion(max_distance=-1)
    with pytest.raises(ValueError, match="window"):
        build_context_fusion(window=0)
    with pytest.raises(ValueError, match="needs an encoder"):
        from spacy_lmcrf.ml.models.word_embed import build_word_embedding
        from spacy_lmcrf.ml.modules.word_char import WordCharEncoder

        WordCharEncoder(build_word_embedding(width=4), output_fusion=build_context_fusion())
