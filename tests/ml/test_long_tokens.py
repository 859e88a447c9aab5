"""One very long token (base64, minified JSON, a CJK run) costs the character models no more
than a long word (issue 21): its piece of a character stream is capped at max_token_chars,
both ends kept; ordinary tokens featurize exactly as without the cap."""

import gzip
import json
import random

import numpy
import pytest
import spacy
import torch
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import make_tempdir, registry

from spacy_lmcrf.ml.featurize.char_stream import (
    CHAR_SEP,
    DEFAULT_MAX_TOKEN_CHARS,
    Vocabularies,
    featurize,
    token_chars,
)
from spacy_lmcrf.ml.featurize.words import featurize_words
from spacy_lmcrf.ml.models.contextual_string_embeddings import featurize_strings
from spacy_lmcrf.ml.modules.bucketing import length_groups
from spacy_lmcrf.ml.modules.char_lm import BiCharLM

from ..benchmarks.test_benchmarks import bench as benchmark_script
from ..util import NER_DATA, make_nlp, ner_examples, save_tiny_char_lm, train

BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
LONG = 30_000
VOCAB = Vocabularies(sorted(set(BASE64 + ".-'")), ["berlin"], ["berlin"], lowercase=True)


def base64_token(n_chars: int = LONG, seed: int = 0) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(BASE64) for _ in range(n_chars))


def cjk_run(n_chars: int = LONG) -> str:
    return "".join(chr(0x4E00 + i % 2000) for i in range(n_chars))


def batch_docs(vocab, long_token=None, n_docs: int = 64, n_tokens: int = 25):
    """n_docs docs of n_tokens words of 1-9 characters; long_token in the middle of the first."""
    rng = random.Random(1)

    def word():
        return "".join(rng.choice(BASE64) for _ in range(rng.randint(1, 9)))

    words = [[word() for _ in range(n_tokens)] for _ in range(n_docs)]
    if long_token is not None:
        words[0].insert(n_tokens // 2, long_token)
    return [Doc(vocab, words=w) for w in words]


def padded_cells(char_lengths, group_size: int = 32) -> int:
    """Characters the character LSTMs step over: each length group padded to its longest."""
    lengths = torch.from_numpy(char_lengths)
    return sum(len(g) * int(lengths[g].max()) for g in length_groups(lengths, group_size))


# -- the cap ---------------------------------------------------------------------


def test_token_chars_keeps_both_ends():
    assert token_chars("abcdefghij", 4) == "abij"
    assert token_chars("abcdefghij", 5) == "abcij"
    assert token_chars("abcdefghij", 1) == "a"
    assert token_chars("abcdefghij", 10) == token_chars("abcdefghij", None) == "abcdefghij"
    long = base64_token()
    piece = token_chars(long, DEFAULT_MAX_TOKEN_CHARS)
    half = DEFAULT_MAX_TOKEN_CHARS // 2
    assert len(piece) == DEFAULT_MAX_TOKEN_CHARS
    assert piece == long[:half] + long[-half:]
    with pytest.raises(ValueError, match="max_token_chars"):
        config = {"@architectures": "spacy_lmcrf.LMLSTMTok2Vec.v1", "max_token_chars": 0}
        registry.resolve({"m": config})


def test_default_leaves_every_conll03_token_whole(shared_data):
    longest = 0
    for split in ("train", "testa", "testb"):
        path = shared_data / "conll2003_en" / f"eng.{split}.gz"
        with gzip.open(path, "rt", encoding="utf8") as file_:
            words = [line.split(" ", 1)[0] for line in file_ if line.strip()]
        longest = max(longest, max(len(word) for word in words))
    assert longest == 61
    assert longest <= DEFAULT_MAX_TOKEN_CHARS


def test_a_long_token_barely_changes_the_batch_arrays():
    nlp = spacy.blank("en")
    with_long = batch_docs(nlp.vocab, base64_token())
    plain = featurize(batch_docs(nlp.vocab), VOCAB, max_length=128, with_lm_targets=True)
    mixed = featurize(with_long, VOCAB, max_length=128, with_lm_targets=True)
    assert mixed.word_ids.shape == (64, 26) and plain.word_ids.shape == (64, 25)
    width, plain_width = mixed.char_ids.shape[1], plain.char_ids.shape[1]
    assert plain_width <= width <= plain_width + DEFAULT_MAX_TOKEN_CHARS + 1
    assert padded_cells(mixed.char_lengths) < 1.5 * padded_cells(plain.char_lengths)
    # the per-word character encoders (max_word_length 64 by default) and Flair's strings
    words = featurize_words(with_long, VOCAB, max_length=128, with_chars=True, max_word_length=64)
    assert words.char_ids.shape[1] == 64
    strings = featurize_strings(with_long, _char_vocab(), 128).char_ids
    plain_strings = featurize_strings(batch_docs(nlp.vocab), _char_vocab(), 128).char_ids
    assert strings.shape[1] <= plain_strings.shape[1] + DEFAULT_MAX_TOKEN_CHARS + 1


def test_the_capped_piece_keeps_both_ends_and_the_lm_stays_aligned():
    nlp = spacy.blank("en")
    long = "Abcd" + "x" * LONG + "wxyz"
    doc = Doc(nlp.vocab, words=["berlin", long, "berlin"])
    capped = featurize([doc], VOCAB, max_length=128, with_lm_targets=True, max_token_chars=8)
    whole = featurize([doc], VOCAB, max_length=128, with_lm_targets=True, max_token_chars=None)
    stream, rev = capped.char_ids[0], capped.char_ids_rev[0]
    after, before = capped.fwd_after[0], capped.fwd_before[0]
    assert stream[before[1] + 1 : after[1]].tolist() == VOCAB.chars_of("Abcdwxyz").tolist()
    assert stream[before[0] + 1 : after[0]].tolist() == VOCAB.chars_of("berlin").tolist()
    assert len(stream) == 1 + 6 + 1 + 8 + 1 + 6 + 1
    # every read position is a separator: the forward state after each word, the backward
    # state before it, and the LMs' predictions from the word's neighbours
    for positions, chars in (
        (after, stream),
        (before, stream),
        (capped.bwd_before[0], rev),
        (capped.bwd_after[0], rev),
    ):
        assert all(chars[p] == CHAR_SEP for p in positions)
    assert before[1:].tolist() == after[:-1].tolist()
    assert capped.lm_targets.tolist() == whole.lm_targets.tolist()
    assert capped.word_ids.tolist() == whole.word_ids.tolist()


def test_a_segment_stream_is_bounded_by_tokens_times_the_cap():
    """Docs without sentence boundaries are cut into windows of max_length tokens, so a
    stream has at most max_length x (max_token_chars + 1) + 1 characters."""
    nlp = spacy.blank("en")
    doc = Doc(nlp.vocab, words=[base64_token(1_000, seed) for seed in range(300)])
    batch = featurize([doc], VOCAB, max_length=128, with_lm_targets=False)
    assert batch.lengths.tolist() == [128, 128, 44]
    assert batch.char_ids.shape[1] == 128 * (DEFAULT_MAX_TOKEN_CHARS + 1) + 1


def test_ordinary_tokens_featurize_as_without_the_cap():
    nlp = spacy.blank("en")
    docs = [Doc(nlp.vocab, words=text.split()) for text, _ in NER_DATA]
    longest_kept = ["x" * DEFAULT_MAX_TOKEN_CHARS, "http://www.pt.lu/infoweb/kreschtmaart"]
    docs.append(Doc(nlp.vocab, words=longest_kept))
    capped = featurize(docs, VOCAB, max_length=128, with_lm_targets=True)
    whole = featurize(docs, VOCAB, max_length=128, with_lm_targets=True, max_token_chars=None)
    names = (
        "word_ids",
        "char_ids",
        "char_ids_rev",
        "char_lengths",
        "fwd_after",
        "bwd_before",
        "fwd_before",
        "bwd_after",
        "lm_targets",
    )
    for name in names:
        numpy.testing.assert_array_equal(getattr(capped, name), getattr(whole, name), err_msg=name)
    strings = featurize_strings(docs, _char_vocab(), 128)
    strings_whole = featurize_strings(docs, _char_vocab(), 128, None)
    for name in ("char_ids", "char_lengths", "first_chars", "last_chars"):
        numpy.testing.assert_array_equal(
            getattr(strings, name), getattr(strings_whole, name), err_msg=name
        )


# -- pipelines -------------------------------------------------------------------


@pytest.fixture(scope="module")
def nlp():
    nlp = make_nlp("lm_crf_ner")
    train(nlp, ner_examples(nlp), n_steps=2)
    return nlp


def test_a_pipeline_annotates_every_token_of_long_token_docs(nlp):
    texts = [
        f"Peter Blackburn sent {base64_token()} to Berlin .",
        f"The European Commission said {cjk_run()} on Thursday",
        "Angela Merkel met Emmanuel Macron in Paris",
    ]
    docs = list(nlp.pipe([Doc(nlp.vocab, words=text.split()) for text in texts], batch_size=3))
    assert max(len(t) for t in docs[0]) == LONG and max(len(t) for t in docs[1]) == LONG
    docs.append(nlp(f"The run {cjk_run()} through the tokenizer"))
    for doc in docs:
        assert all(token.ent_iob_ in ("B", "I", "O") for token in doc)
    # training reads the long token too (its word is an LM target at its capped word end)
    words = ["Peter", "Blackburn", base64_token(), "Berlin"]
    ref = Doc(nlp.vocab, words=words, ents=["B-PER", "I-PER", "O", "B-LOC"])
    losses = {}
    nlp.update(ner_examples(nlp) + [Example(Doc(nlp.vocab, words=words), ref)], losses=losses)
    assert losses and all(numpy.isfinite(value) for value in losses.values())


def test_the_cap_leaves_ordinary_outputs_unchanged(nlp):
    tok2vec = nlp.get_pipe("lm_crf_ner").model.get_ref("tok2vec")
    docs = [nlp.make_doc(text) for text, _ in NER_DATA]
    long_doc = [Doc(nlp.vocab, words=["Peter", "sent", base64_token(), "home"])]
    assert tok2vec.attrs["max_token_chars"] == DEFAULT_MAX_TOKEN_CHARS
    capped, capped_long = tok2vec.predict(docs), tok2vec.predict(long_doc)
    tok2vec.attrs["max_token_chars"] = None
    try:
        whole, whole_long = tok2vec.predict(docs), tok2vec.predict(long_doc)
    finally:
        tok2vec.attrs["max_token_chars"] = DEFAULT_MAX_TOKEN_CHARS
    for x, y in zip(capped, whole):
        numpy.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    assert not numpy.allclose(capped_long[0][2], whole_long[0][2], atol=1e-4)


def test_a_pipeline_saved_without_the_setting_loads_with_the_default(nlp):
    """Configs and saved pipelines from before the setting resolve to the default."""
    tok2vec = nlp.get_pipe("lm_crf_ner").model.get_ref("tok2vec")
    del tok2vec.attrs["max_token_chars"]
    try:
        with make_tempdir() as tmp:
            nlp.to_disk(tmp)
            config = (tmp / "config.cfg").read_text()
            assert "max_token_chars" in config
            lines = [line for line in config.splitlines() if not line.startswith("max_token_chars")]
            (tmp / "config.cfg").write_text("\n".join(lines) + "\n")
            loaded = spacy.load(tmp)
    finally:
        tok2vec.attrs["max_token_chars"] = DEFAULT_MAX_TOKEN_CHARS
    assert loaded.get_pipe("lm_crf_ner").model.get_ref("tok2vec").attrs["max_token_chars"] == 64
    doc = loaded(f"Peter sent {base64_token()} to Berlin")
    assert all(token.ent_iob_ in ("B", "I", "O") for token in doc)


# -- contextual string embeddings ------------------------------------------------

HIDDEN = 6


def _char_vocab():
    from spacy_lmcrf.ml.modules.char_vocab import CharVocab

    return CharVocab(sorted(set(BASE64 + " .\n")))


@pytest.fixture(scope="module")
def lm_path(tmp_path_factory):
    return save_tiny_char_lm(tmp_path_factory.mktemp("lm") / "char_lm.msgpack", HIDDEN)


def test_contextual_string_embeddings_read_long_tokens_capped(lm_path):
    def embedder(**settings):
        config = {
            "@architectures": "spacy_lmcrf.ContextualStringEmbeddings.v1",
            "lm_path": str(lm_path),
            "hidden_size": HIDDEN,
            **settings,
        }
        model = registry.resolve({"m": config})["m"]
        model.initialize()
        return model

    capped, whole = embedder(), embedder(max_token_chars=None)
    vocab = spacy.blank("en").vocab
    long = base64_token()
    docs = [Doc(vocab, words=["Peter", long, "left"]), Doc(vocab, words=["CJK", cjk_run(), "."])]
    rows = capped.predict(docs)
    assert [r.shape for r in rows] == [(3, 2 * HIDDEN), (3, 2 * HIDDEN)]
    assert all(numpy.isfinite(numpy.asarray(r)).all() for r in rows)
    batch = featurize_strings(docs[:1], BiCharLM.load(lm_path).vocab, 128)
    half = DEFAULT_MAX_TOKEN_CHARS // 2
    expected_length = len("\nPeter ") + DEFAULT_MAX_TOKEN_CHARS + len(" left\n")
    assert batch.char_lengths.tolist() == [expected_length]
    assert batch.last_chars[0, 1] - batch.first_chars[0, 1] + 1 == DEFAULT_MAX_TOKEN_CHARS
    expected = BiCharLM.load(lm_path).vocab.encode(long[:half] + long[-half:])
    first, last = batch.first_chars[0, 1], batch.last_chars[0, 1]
    assert batch.char_ids[0, first : last + 1].tolist() == expected.tolist()
    ordinary = [Doc(vocab, words=text.split()) for text, _ in NER_DATA]
    for x, y in zip(capped.predict(ordinary), whole.predict(ordinary)):
        numpy.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


# -- the benchmark -----------------------------------------------------------------


@pytest.mark.slow
def test_long_tokens_benchmark_runs_tiny(tmp_path):
    bench = benchmark_script("long_tokens")
    tiny = []
    sizes = {"char_dim": 4, "char_hidden": 8, "width": 8, "word_dim": 8, "min_freq": 1}
    for key, value in sizes.items():
        tiny += [f"--model.tok2vec.{key}", str(value)]
    output = tmp_path / "long.json"
    code = bench.main(
        [
            "--docs",
            "3",
            "--doc-tokens",
            "4",
            "--long-chars",
            "3000",
            "--alphabet",
            "cjk",
            "--repeats",
            "1",
            "--threads",
            "1",
            "--output",
            str(output),
            *tiny,
        ]
    )
    assert code == 0
    rows = json.loads(output.read_text())["rows"]
    assert [r["case"] for r in rows] == list(bench.CASES)
    shapes = [(r["docs"], r["tokens"], r["longest_token_chars"]) for r in rows]
    assert shapes[1:] == [(3, 13, 3000), (1, 5, 3000)]
    assert rows[0]["seconds_ratio"] == 1.0 and all(r["peak_rss_mib"] > 0 for r in rows)
    assert "| batch + long token | 3 | 13 | 3,000 |" in bench.markdown(rows)
