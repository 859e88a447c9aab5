"""lm_crf_ner over spacy-transformers' TransformerListener (configs/transformer_crf_ner.cfg),
with a tiny BERT built from a local config: no model hub, no download."""

import shutil
from pathlib import Path

import pytest
import spacy
from spacy.training.initialize import init_nlp
from spacy.util import load_config, make_tempdir, resolve_dot_names

from .util import NER_DATA, ner_examples, write_task_corpora

pytest.importorskip("spacy_transformers")
transformers = pytest.importorskip("transformers")

CONFIG = Path(__file__).parents[1] / "configs" / "transformer_crf_ner.cfg"
HIDDEN = 16


def _tiny_bert(path: Path) -> Path:
    words = sorted({w.lower() for text, _ in NER_DATA for w in text.split()})
    vocab = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        *sorted(set("".join(words)) | set(words)),
    ]
    path.mkdir()
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf8")
    transformers.BertTokenizerFast(
        vocab_file=str(path / "vocab.txt"), do_lower_case=True
    ).save_pretrained(path)
    config = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=HIDDEN,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=160,
    )
    transformers.BertModel(config).save_pretrained(path)
    return path


@pytest.mark.slow
def test_crf_over_transformer_listener_trains_saves_and_loads(tmp_path):
    model_dir = _tiny_bert(tmp_path / "tiny-bert")
    data = write_task_corpora(tmp_path, {"ner": ner_examples}) / "ner.spacy"
    overrides = {
        "paths.train": str(data),
        "paths.dev": str(data),
        "components.transformer.model.name": str(model_dir),
        "components.lm_crf_ner.model.tok2vec.width": HIDDEN,
        "components.lm_crf_ner.model.dropout": 0.0,
        "training.optimizer.learn_rate.initial_rate": 0.01,
        "training.optimizer.learn_rate.warmup_steps": 1,
    }
    nlp = init_nlp(load_config(CONFIG, overrides=overrides))
    assert nlp.pipe_names == ["transformer", "lm_crf_ner"]
    optimizer, train_corpus = resolve_dot_names(
        nlp.config.interpolate(), ["training.optimizer", "corpora.train"]
    )
    examples = list(train_corpus(nlp))
    bert = nlp.get_pipe("transformer").model.transformer
    embeddings = bert.embeddings.word_embeddings.weight.detach().clone()
    losses = []
    for _ in range(25):
        losses.append(nlp.update(examples, sgd=optimizer)["lm_crf_ner"])
        optimizer.step_schedules()
    assert losses[-1] < losses[0] / 4
    assert not bert.embeddings.word_embeddings.weight.detach().equal(
        embeddings
    )  # the listener's gradient arrived
    texts = [eg.reference.text for eg in examples]
    predicted = [[(e.start, e.end, e.label_) for e in doc.ents] for doc in nlp.pipe(texts)]
    with make_tempdir() as tmp:
        nlp.to_disk(tmp)
        shutil.rmtree(model_dir)  # the saved pipeline carries the transformer
        nlp2 = spacy.load(tmp)
        assert [
            [(e.start, e.end, e.label_) for e in doc.ents] for doc in nlp2.pipe(texts)
        ] == predicted


def test_wrong_width_is_a_clear_error(tmp_path):
    model_dir = _tiny_bert(tmp_path / "tiny-bert")
    data = write_task_corpora(tmp_path, {"ner": ner_examples}) / "ner.spacy"
    overrides = {
        "paths.train": str(data),
        "paths.dev": str(data),
        "components.transformer.model.name": str(model_dir),
        "components.lm_crf_ner.model.tok2vec.width": 768,
    }
    with pytest.raises(ValueError, match="width = 768.*width 16"):
        init_nlp(load_config(CONFIG, overrides=overrides))
