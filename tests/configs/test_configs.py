"""Every shipped config (configs/*.cfg, found by glob: a new one is tested without a line
here) is valid, trains on tiny data, and saves and loads with the same output. Pipeline
configs pass `spacy debug config` (the function the CLI runs), each head's loss falls over
a few updates, and the pipeline read back from disk annotates as the trained one; LM
pretraining configs resolve to valid settings and pretrain a few steps into LMs that load.
The tiny data, sizes and paths each config gets are in harness.py."""

import pytest
import spacy
from spacy.cli.debug_config import debug_config
from spacy.language import Language
from spacy.util import combine_score_weights, load_config

from spacy_lmcrf.ml.modules.char_lm import BiCharLM
from spacy_lmcrf.ml.modules.word_lm import BiWordLM
from spacy_lmcrf.pretrain import char_lm_training, word_lm_training
from spacy_lmcrf.pretrain.char_lm_training import load_pretraining_config

from .harness import (
    CONFIG_NAMES,
    CONFIGS,
    TINY,
    applies,
    expand,
    family,
    has_transformers,
    heads,
    is_pretraining,
    overrides,
)

# an LM pretraining config's command, by family: its module (read_settings, pretrain_*), the
# file it writes, the LMs' class, and a size of the LMs read back with the setting it comes from
PRETRAINING = {
    "charlm_": (char_lm_training, "char_lm.msgpack", BiCharLM, "hidden_size", "model.hidden_size"),
    "wordlm_": (
        word_lm_training,
        "word_lm.msgpack",
        BiWordLM,
        "output_size",
        "model.projection_size",
    ),
}
# what a config needs that is not always installed
NEEDS = {"transformer_crf_": "spacy_transformers"}


def _skip_unless_installed(name):
    if family(name) in NEEDS and not has_transformers():
        pytest.skip(f"{name}.cfg needs {NEEDS[family(name)]}")


def _annotations(nlp, texts):
    return [
        (
            [(t.tag_, t.ent_iob_, t.ent_type_) for t in doc],
            {key: [(s.start, s.end, s.label_) for s in group] for key, group in doc.spans.items()},
        )
        for doc in nlp.pipe(texts)
    ]


def test_the_configs_are_found():
    assert len(CONFIG_NAMES) >= 30 and "lmcrf_ner" in CONFIG_NAMES


@pytest.mark.parametrize(
    "name",
    # importing transformers and making the tiny BERT take a second
    [pytest.param(n, marks=pytest.mark.slow) if family(n) in NEEDS else n for n in CONFIG_NAMES],
)
def test_config_is_valid(name, data):
    _skip_unless_installed(name)
    path = CONFIGS / f"{name}.cfg"
    settings = overrides(name, data)
    if is_pretraining(load_config(path)):
        module = PRETRAINING[family(name)][0]
        config = load_pretraining_config(path, settings)
        assert module.read_settings(config)["model"]
    else:
        debug_config(path, overrides=settings)


def _pipeline_config_names():
    return [n for n in CONFIG_NAMES if not is_pretraining(load_config(CONFIGS / f"{n}.cfg"))]


@pytest.mark.parametrize("name", _pipeline_config_names())
def test_dev_score_is_what_the_config_weights(name):
    """spaCy adds every factory's default score weights to [training.score_weights]. A default
    the config leaves in (lm_crf_spans' spans_sc_f, when the spans key is not "sc") counts in
    the dev score at 0: the score spaCy logs, plots and selects by would be a fraction of the
    config's metric (half the chunk F1 before the chunk configs nulled it)."""
    _skip_unless_installed(name)
    config = load_config(CONFIGS / f"{name}.cfg")
    weights = config["training"]["score_weights"]
    defaults = [
        Language.get_factory_meta(component["factory"]).default_score_weights
        for component in config["components"].values()
        if "factory" in component
    ]
    combined = combine_score_weights(defaults, weights)
    assert {key for key, value in combined.items() if value} == {
        key for key, value in weights.items() if value
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_config_trains_saves_and_loads(name, data, trained, tmp_path):
    _skip_unless_installed(name)
    path = CONFIGS / f"{name}.cfg"
    if is_pretraining(load_config(path)):
        module, filename, lm_class, size, setting = PRETRAINING[family(name)]
        settings = overrides(name, data)
        config = load_pretraining_config(path, settings)
        record = getattr(module, f"pretrain_{filename.split('.')[0]}")(
            config, tmp_path, show_progress=False
        )
        assert record["step"] == settings["training.max_steps"]
        assert getattr(lm_class.load(tmp_path / filename), size) == settings[setting]
        return
    run = trained(name)
    assert run.heads
    for head in run.heads:
        assert 0 < run.last[head] < run.first[head], (head, run.first, run.last)
    texts = [eg.reference.text for eg in run.examples]
    expected = _annotations(run.nlp, texts)
    run.nlp.to_disk(tmp_path / "model")
    assert _annotations(spacy.load(tmp_path / "model"), texts) == expected


@pytest.mark.parametrize("prefix", sorted(TINY))
def test_every_tiny_size_names_a_section_of_its_family(prefix):
    """A tiny size is only set where a config has its section: one in no config of its family
    (a typo, a renamed section) would silently leave the configs at full size."""
    names = [name for name in CONFIG_NAMES if family(name) == prefix]
    assert names, f"no config of the family {prefix!r}"
    configs = [load_config(CONFIGS / f"{name}.cfg") for name in names]
    for key in TINY[prefix]:
        required = key.rstrip("?")
        assert any(
            applies(config, full)
            for config in configs
            for full in expand(required, [] if is_pretraining(config) else heads(config))
        ), f"{key} is in no config of {prefix}"
