"""Small pipelines and training data shared by the component tests."""

from pathlib import Path
from typing import Callable, Dict, List, Optional

import spacy
from spacy.language import Language
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example
from thinc.api import Adam

# the repository's root: configs/, assets/, benchmarks/, README.md (tests/util.py is one level down)
ROOT = Path(__file__).parents[1]
# the tests' own data (tests/data: an old saved pipeline and the script that made it)
TEST_DATA = Path(__file__).parent / "data"

TINY_TOK2VEC = {
    "char_dim": 8,
    "char_hidden": 24,
    "width": 32,
    "word_dim": 16,
    "min_freq": 1,
    "dropout": 0.0,
}

NER_DATA = [
    ("Peter Blackburn lives in Berlin .", ["B-PER", "I-PER", "O", "O", "B-LOC", "O"]),
    (
        "EU rejects German call to boycott British lamb .",
        ["B-ORG", "O", "B-MISC", "O", "O", "O", "B-MISC", "O", "O"],
    ),
    (
        "Angela Merkel met Emmanuel Macron in Paris",
        ["B-PER", "I-PER", "O", "B-PER", "I-PER", "O", "B-LOC"],
    ),
    ("The European Commission said on Thursday", ["O", "B-ORG", "I-ORG", "O", "O", "O"]),
]

TAG_DATA = [
    ("I like green eggs", ["PRP", "VBP", "JJ", "NNS"]),
    ("Eat blue ham", ["VB", "JJ", "NN"]),
    ("They eat ham and eggs", ["PRP", "VBP", "NN", "CC", "NNS"]),
]

CHUNK_DATA = [
    (
        "He reckons the current account deficit will narrow",
        [(0, 1, "NP"), (1, 2, "VP"), (2, 6, "NP"), (6, 8, "VP")],
    ),
    ("The dog barked loudly", [(0, 2, "NP"), (2, 3, "VP"), (3, 4, "ADVP")]),
    ("Prices rose", [(0, 1, "NP"), (1, 2, "VP")]),
]


def ner_examples(nlp: Language) -> List[Example]:
    examples = []
    for text, tags in NER_DATA:
        words = text.split()
        ref = Doc(nlp.vocab, words=words, ents=tags)
        examples.append(Example(nlp.make_doc(text), ref))
    return examples


NNP_WORDS = {"Peter": "NNP", "Blackburn": "NNP", "Berlin": "NNP", "Paris": "NNP", "EU": "NNP"}


def tagged_ner_examples(nlp: Language) -> List[Example]:
    """NER_DATA four times over with a word w0..w3 added: more than ten docs, so a ten-doc
    sample misses words; NER and tags on each (the shared tok2vec tests)."""
    examples = []
    for i in range(4):
        for text, ents in NER_DATA:
            words = text.split() + [f"w{i}"]
            ref = Doc(
                nlp.vocab,
                words=words,
                ents=ents + ["O"],
                tags=[NNP_WORDS.get(w, "NN") for w in words],
            )
            examples.append(Example(Doc(nlp.vocab, words=words), ref))
    return examples


def tag_examples(nlp: Language) -> List[Example]:
    return [
        Example(nlp.make_doc(text), Doc(nlp.vocab, words=text.split(), tags=tags))
        for text, tags in TAG_DATA
    ]


def chunk_examples(nlp: Language, key: str = "chunks") -> List[Example]:
    examples = []
    for text, spans in CHUNK_DATA:
        ref = Doc(nlp.vocab, words=text.split())
        ref.spans[key] = [Span(ref, s, e, label=l) for s, e, l in spans]
        examples.append(Example(nlp.make_doc(text), ref))
    return examples


def write_task_corpora(
    directory: Path, makers: Dict[str, Callable[[Language], List[Example]]]
) -> Path:
    """Each task's tiny examples (their references) as DIRECTORY/TASK.spacy."""
    nlp = spacy.blank("en")
    for task, make_examples in makers.items():
        DocBin(docs=[eg.reference for eg in make_examples(nlp)]).to_disk(
            directory / f"{task}.spacy"
        )
    return directory


def convert_ner_sample(directory: Path, prefix: str = "sample_") -> Path:
    """The shipped CoNLL-2003 sample (assets/conll03_sample, IOB1) as
    DIRECTORY/PREFIX{train,dev}.spacy."""
    from spacy_lmcrf.conll import convert

    sample = ROOT / "assets" / "conll03_sample"
    for split in ("train", "dev"):
        convert(
            sample / f"{split}.iob", directory / f"{prefix}{split}.spacy", task="ner", scheme="IOB1"
        )
    return directory


def make_nlp(
    factory: str, config: Optional[Dict] = None, tok2vec: Optional[Dict] = None
) -> Language:
    nlp = spacy.blank("en")
    cfg = {"model": {"tok2vec": {**TINY_TOK2VEC, **(tok2vec or {})}}}
    cfg.update(config or {})
    nlp.add_pipe(factory, config=cfg)
    return nlp


def train(
    nlp: Language, examples: List[Example], n_steps: int, learn_rate: float = 0.01
) -> Dict[str, float]:
    nlp.initialize(lambda: examples)
    optimizer = Adam(learn_rate)
    losses: Dict[str, float] = {}
    for _ in range(n_steps):
        losses = {}
        nlp.update(examples, sgd=optimizer, losses=losses)
    return losses


def save_tiny_char_lm(path, hidden_size: int = 12, seed: int = 1):
    """A randomly initialised forward/backward character LM pair, saved as
    `spacy lmcrf pretrain-char-lm` saves them (for tests of the embeddings' plumbing)."""
    import torch

    from spacy_lmcrf.ml.modules.char_lm import BiCharLM
    from spacy_lmcrf.ml.modules.char_vocab import CharVocab

    torch.manual_seed(seed)
    chars = sorted(set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,-'\n"))
    lms = BiCharLM(
        CharVocab(chars), embedding_size=6, hidden_size=hidden_size, num_layers=2, dropout=0.0
    )
    lms.save(path, step=0)
    return path


def save_tiny_word_lm(path, projection_size: int = 6, seed: int = 1, cutoffs=()):
    """A randomly initialised forward/backward word LM pair (hidden 10, projection
    projection_size, two layers), saved as `spacy lmcrf pretrain-word-lm` saves them (for
    tests of the embeddings' plumbing). Its vocabulary is the words of the shared tiny data."""
    import torch

    from spacy_lmcrf.ml.modules.word_lm import BiWordLM
    from spacy_lmcrf.ml.modules.word_vocab import EOS, WordVocab

    torch.manual_seed(seed)
    words = sorted({w for text, _ in NER_DATA + TAG_DATA + CHUNK_DATA for w in text.split()})
    lms = BiWordLM(
        WordVocab([EOS] + words),
        embedding_size=6,
        hidden_size=10,
        projection_size=projection_size,
        num_layers=2,
        dropout=0.0,
        cutoffs=cutoffs,
    )
    lms.save(path, step=0)
    return path


def save_tiny_bert(path: Path, hidden_size: int = 16) -> Path:
    """A randomly initialised one-layer BERT (and its word-piece tokenizer over the words of
    NER_DATA) in path, for spacy-transformers' TransformerModel: no model hub, no download."""
    import pytest

    transformers = pytest.importorskip("transformers")  # spacy-transformers' dependency

    words = sorted({w.lower() for text, _ in NER_DATA for w in text.split()})
    pieces = sorted(set("".join(words)) | set(words))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *pieces]
    path.mkdir()
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf8")
    transformers.BertTokenizerFast(
        vocab_file=str(path / "vocab.txt"), do_lower_case=True
    ).save_pretrained(path)
    config = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=160,
    )
    transformers.BertModel(config).save_pretrained(path)
    return path
