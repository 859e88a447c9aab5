"""lm_crf_ner over spacy-transformers' TransformerListener (configs/transformer_crf_ner.cfg),
with a tiny BERT built from a local config: no model hub, no download."""

import shutil
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
import spacy
from spacy.language import Language
from spacy.training import Example
from spacy.training.initialize import init_nlp
from spacy.util import load_config, load_model_from_config, make_tempdir, resolve_dot_names
from thinc.api import Config

from spacy_lmcrf.ml.models.crf_tagger import get_crf_module

from ..util import NER_DATA, ROOT, ner_examples, save_tiny_bert, write_task_corpora

pytest.importorskip("spacy_transformers")
pytest.importorskip("transformers")

CONFIG = ROOT / "configs" / "transformer_crf_ner.cfg"
HIDDEN = 16


def _overrides(tmp_path: Path) -> Dict[str, Any]:
    model_dir = save_tiny_bert(tmp_path / "tiny-bert", HIDDEN)
    data = write_task_corpora(tmp_path, {"ner": ner_examples}) / "ner.spacy"
    return {
        "paths.train": str(data),
        "paths.dev": str(data),
        "components.transformer.model.name": str(model_dir),
        "components.lm_crf_ner.model.dropout": 0.0,
        "training.optimizer.learn_rate.initial_rate": 0.01,
        "training.optimizer.learn_rate.warmup_steps": 1,
    }


def _with_width(config: Config, width: int) -> Config:
    """The config as it was before CRFTagger inferred its tok2vec's width: the listener
    inside the deprecated spacy_lmcrf.WithWidth.v1, its width typed in."""
    model = config["components"]["lm_crf_ner"]["model"]
    model["tok2vec"] = {
        "@architectures": "spacy_lmcrf.WithWidth.v1",
        "width": width,
        "tok2vec": model["tok2vec"],
    }
    return config


def _ents(nlp: Language, texts: List[str]) -> List[List[Tuple[int, int, str]]]:
    return [[(e.start, e.end, e.label_) for e in doc.ents] for doc in nlp.pipe(texts)]


def _train(nlp: Language, n_steps: int) -> Tuple[List[Example], List[float]]:
    optimizer, train_corpus = resolve_dot_names(
        nlp.config.interpolate(), ["training.optimizer", "corpora.train"]
    )
    examples = list(train_corpus(nlp))
    losses = []
    for _ in range(n_steps):
        losses.append(nlp.update(examples, sgd=optimizer)["lm_crf_ner"])
        optimizer.step_schedules()
    return examples, losses


@pytest.mark.slow
def test_crf_over_transformer_listener_trains_saves_and_loads(tmp_path):
    overrides = _overrides(tmp_path)
    model_dir = Path(overrides["components.transformer.model.name"])
    nlp = init_nlp(load_config(CONFIG, overrides=overrides))
    assert nlp.pipe_names == ["transformer", "lm_crf_ner"]
    crf = get_crf_module(nlp.get_pipe("lm_crf_ner").model)
    assert crf.n_in == HIDDEN  # inferred at initialize: the config names no width
    bert = nlp.get_pipe("transformer").model.transformer
    embeddings = bert.embeddings.word_embeddings.weight.detach().clone()
    examples, losses = _train(nlp, 25)
    assert losses[-1] < losses[0] / 4
    assert not bert.embeddings.word_embeddings.weight.detach().equal(
        embeddings
    )  # the listener's gradient arrived
    texts = [eg.reference.text for eg in examples]
    predicted = _ents(nlp, texts)
    assert any(predicted)
    nlp_bytes = load_model_from_config(nlp.config, auto_fill=True)
    nlp_bytes.from_bytes(nlp.to_bytes())
    assert _ents(nlp_bytes, texts) == predicted
    with make_tempdir() as tmp:
        nlp.to_disk(tmp)
        shutil.rmtree(model_dir)  # the saved pipeline carries the transformer
        nlp2 = spacy.load(tmp)
        assert get_crf_module(nlp2.get_pipe("lm_crf_ner").model).n_in == HIDDEN
        assert _ents(nlp2, texts) == predicted


@pytest.mark.slow
def test_old_config_with_width_still_loads_and_trains(tmp_path):
    config = _with_width(load_config(CONFIG, overrides=_overrides(tmp_path)), HIDDEN)
    with pytest.warns(DeprecationWarning, match="WithWidth"):
        nlp = init_nlp(config)
    _, losses = _train(nlp, 5)
    assert losses[-1] < losses[0]
    with make_tempdir() as tmp:
        nlp.to_disk(tmp)
        with pytest.warns(DeprecationWarning, match="WithWidth"):
            nlp2 = spacy.load(tmp)
    texts = [text for text, _ in NER_DATA]
    assert _ents(nlp2, texts) == _ents(nlp, texts)


def test_wrong_width_is_a_clear_error(tmp_path):
    config = _with_width(load_config(CONFIG, overrides=_overrides(tmp_path)), 768)
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="width = 768.*width 16"):
        init_nlp(config)
