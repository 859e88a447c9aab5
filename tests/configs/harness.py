"""What every shipped config needs to run on tiny data: its paths filled with the tiny corpora
and LMs, the sizes of its family made tiny, and a few training steps the way `spacy train`
takes them. Used by the parametrised harness (test_configs.py) and the systems' own tests."""

import json
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Dict, List, Optional

from spacy.language import Language
from spacy.training import Example
from spacy.training.initialize import init_nlp
from spacy.util import load_config, resolve_dot_names
from thinc.api import Config, Optimizer

from spacy_lmcrf.training.dev_scores import claim_listeners, publish_dev_score

from ..util import (
    ROOT,
    chunk_examples,
    convert_ner_sample,
    ner_examples,
    save_tiny_bert,
    save_tiny_char_lm,
    save_tiny_word_lm,
    tag_examples,
    write_task_corpora,
)

CONFIGS = ROOT / "configs"
CONFIG_NAMES = sorted(path.stem for path in CONFIGS.glob("*.cfg"))
CHAR_LM_HIDDEN = 8
WORD_LM_PROJECTION = 6
BERT_HIDDEN = 16

# the tiny corpus a head of each factory trains on
TASK_OF_FACTORY = {
    "lm_crf_ner": "ner",
    "lm_crf_spans": "chunk",
    "lm_crf_tagger": "pos",
    "ner": "ner",  # spaCy's own, in spacy_ner_cpu*.cfg
    "tagger": "pos",  # spaCy's own, in spacy_tagger_cpu.cfg
}
EXAMPLES = {"ner": ner_examples, "chunk": chunk_examples, "pos": tag_examples}

_HIER_GRU_PARTS = {
    "encoder.width": 8,
    "encoder.depth": 1,
    "char_embed.char_dim": 4,
    "char_embed.hidden": 4,
    "word_embed.width": 8,
}
# Tiny sizes of each family of configs: a config takes those of the longest key its name
# starts with. "{head}" stands for the model of each head ("components.NAME.model" of every
# component whose factory is in TASK_OF_FACTORY). A setting the config does not have is left
# out when its section is not in the config, or, for a key that ends with "?", when the setting
# is not (test_every_tiny_size_names_a_section_of_its_family checks each is somewhere). A config
# of no family here is tested at its shipped sizes.
TINY: Dict[str, Dict[str, Any]] = {
    "lmcrf_": {
        "{head}.tok2vec.char_dim": 8,
        "{head}.tok2vec.char_hidden": 16,
        "{head}.tok2vec.width": 16,
        "{head}.tok2vec.min_freq": 1,
    },
    "bilstm_crf_": {"{head}.tok2vec.encoder.width": 8},
    "lstm_crf_": {
        "{head}.tok2vec.encoder.width": 8,
        "{head}.tok2vec.char_embed.char_dim": 4,
        "{head}.tok2vec.char_embed.hidden": 4,
    },
    "lstm_cnn_crf_": {
        "{head}.tok2vec.encoder.width": 8,
        "{head}.tok2vec.char_embed.char_dim": 4,
        "{head}.tok2vec.char_embed.filters": 4,
    },
    "flair_": {
        "{head}.tok2vec.tok2vec.*.char_lm.hidden_size": CHAR_LM_HIDDEN,
        "{head}.tok2vec.tok2vec.*.words.word_embed.width": 8,
        "{head}.tok2vec.encoder.width": 8,
        "training.optimizer.learn_rate.steps_per_epoch": 1,
    },
    "hier_gru_": {f"{{head}}.tok2vec.{key}": value for key, value in _HIER_GRU_PARTS.items()},
    "yang_": {f"components.tok2vec.model.{key}": value for key, value in _HIER_GRU_PARTS.items()},
    "yang_crosslingual_": {
        "{head}.tok2vec.encoder.width": 8,
        "{head}.tok2vec.features.width": 8,
        "{head}.tok2vec.word_embed.width": 8,
        "components.tok2vec.model.char_embed.hidden": 4,
    },
    "psa_": {
        "{head}.tok2vec.word_embed.width": 8,
        "{head}.tok2vec.char_embed.char_dim": 4,
        "{head}.tok2vec.char_embed.hidden": 4,
        "{head}.tok2vec.encoder.width": 8,
        "{head}.tok2vec.fusion.dropout": 0.0,
    },
    "taglm_": {
        "{head}.tok2vec.bilm.output_size": WORD_LM_PROJECTION,
        "{head}.tok2vec.word_embed.width": 8,
        "{head}.tok2vec.width": 8,
        "training.optimizer.learn_rate.steps_per_epoch": 1,
    },
    "transformer_crf_": {
        "components.transformer.model.name": "{tiny_bert}",
        # the CRF head's width, where the config still types it in (spacy_lmcrf.WithWidth.v1)
        "{head}.tok2vec.width?": BERT_HIDDEN,
        "{head}.dropout": 0.0,
        "training.optimizer.learn_rate.initial_rate": 0.01,
        "training.optimizer.learn_rate.warmup_steps": 1,
    },
    # spaCy's own NER (the benchmarks' peer): no vectors in the tiny data
    "spacy_ner_cpu": {
        "components.tok2vec.model.embed.include_static_vectors": False,
        "components.tok2vec.model.encode.width": 32,
        "components.tok2vec.model.encode.depth": 2,
        "training.optimizer.learn_rate": 0.01,
    },
    # spaCy's own tagger (the POS peer), likewise
    "spacy_tagger_cpu": {
        "components.tok2vec.model.embed.include_static_vectors": False,
        "components.tok2vec.model.encode.width": 32,
        "components.tok2vec.model.encode.depth": 2,
        "training.optimizer.learn_rate": 0.01,
    },
    # LM pretraining configs (`spacy lmcrf pretrain-char-lm` / `pretrain-word-lm`)
    "charlm_": {
        "model.hidden_size": 16,
        "model.embedding_size": 8,
        "training.batch_size": 4,
        "training.bptt": 16,
        "training.max_steps": 6,
        "training.eval_every": 3,
    },
    "wordlm_": {
        "model.hidden_size": 16,
        "model.projection_size": 8,
        "model.embedding_size": 8,
        "model.cutoffs": [10],
        "training.batch_size": 4,
        "training.bptt": 6,
        "training.max_steps": 6,
        "training.eval_every": 3,
    },
}


def family(name: str) -> Optional[str]:
    keys = [key for key in TINY if name.startswith(key)]
    return max(keys, key=len) if keys else None


def is_pretraining(config: Config) -> bool:
    """An LM pretraining config: no spaCy pipeline, [model] [corpus] [training] of its own."""
    return "components" not in config


def heads(config: Config) -> List[str]:
    """The components that learn a task: ours (lm_crf_*) and spaCy's NER and tagger."""
    return [
        name
        for name, component in config["components"].items()
        if component.get("factory") in TASK_OF_FACTORY
    ]


def _get(config: Config, key: str) -> Any:
    section: Any = config
    for part in key.split("."):
        if not isinstance(section, dict) or part not in section:
            return None
        section = section[part]
    return section


def applies(config: Config, key: str) -> bool:
    """Whether the tiny size key (expanded, "?" kept) is set on config: its section is in the
    config, and with a final "?" the setting itself too."""
    optional = key.endswith("?")
    section, _, setting = key.rstrip("?").rpartition(".")
    found = _get(config, section)
    return isinstance(found, dict) and (setting in found or not optional)


def write_data(directory: Path) -> Path:
    """The tiny corpora (TASK.spacy, sample_{train,dev}.spacy), LMs and raw text the configs
    train on, in directory."""
    write_task_corpora(directory, EXAMPLES)
    convert_ner_sample(directory)
    save_tiny_char_lm(directory / "char_lm.msgpack", CHAR_LM_HIDDEN)
    save_tiny_word_lm(directory / "word_lm.msgpack", WORD_LM_PROJECTION)
    texts = [eg.reference.text for make in EXAMPLES.values() for eg in make(_blank())]
    (directory / "text").mkdir()
    (directory / "text" / "a.txt").write_text("\n".join(texts * 20) + "\n", encoding="utf8")
    (directory / "dev.txt").write_text("\n".join(texts) + "\n", encoding="utf8")
    return directory


def tiny_bert(data: Path) -> Path:
    """The tiny BERT of data (made on first use: transformers is slow to import)."""
    if not (data / "tiny-bert").exists():
        save_tiny_bert(data / "tiny-bert", BERT_HIDDEN)
    return data / "tiny-bert"


def has_transformers() -> bool:
    """spacy-transformers (the test extra's) and its transformers are installed."""
    return all(find_spec(name) is not None for name in ("spacy_transformers", "transformers"))


def _blank() -> Language:
    import spacy

    return spacy.blank("en")


def _path_for(key: str, task: Optional[str], data: Path, pretraining: bool) -> Optional[Path]:
    if pretraining:
        return {"train": data / "text", "dev": data / "dev.txt"}.get(key)
    if key in ("train", "dev"):
        return data / f"{task}.spacy"
    if key in ("char_lm", "word_lm"):
        return data / f"{key}.msgpack"
    corpus, _, split = key.rpartition("_")
    if corpus and split in ("train", "dev"):
        # a task's corpus of a joint config, or a language's (NER) of the cross-lingual one
        return data / f"{corpus if corpus in EXAMPLES else 'ner'}.spacy"
    return None  # vectors, init_tok2vec: left as shipped


def overrides(name: str, data: Path, extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Config overrides that run configs/NAME.cfg on the tiny data in data (write_data's):
    its paths, its family's tiny sizes, then extra ("{head}" allowed; a value None also drops
    the tiny sizes under that key, for settings such as `tok2vec.encoder = null`)."""
    config = load_config(CONFIGS / f"{name}.cfg")
    pretraining = is_pretraining(config)
    head_names = [] if pretraining else heads(config)
    task = TASK_OF_FACTORY[config["components"][head_names[0]]["factory"]] if head_names else None
    result: Dict[str, Any] = {}
    for key in config["paths"]:
        path = _path_for(key, task, data, pretraining)
        if path is not None:
            result[f"paths.{key}"] = str(path)
    tiny = dict(TINY.get(family(name) or "", {}))
    requested = dict(extra or {})
    for key, value in requested.items():
        if value is None:
            tiny = {k: v for k, v in tiny.items() if not k.startswith(key + ".")}
    for key, value in tiny.items():
        if value == "{tiny_bert}":
            value = str(tiny_bert(data))
        expanded = expand(key, head_names)
        result.update({k.rstrip("?"): value for k in expanded if applies(config, k)})
    for key, value in requested.items():
        result.update({k: value for k in expand(key, head_names)})
    return result


def expand(key: str, head_names: List[str]) -> List[str]:
    if "{head}" not in key:
        return [key]
    return [key.replace("{head}", f"components.{name}.model") for name in head_names]


def cli_args(settings: Dict[str, Any]) -> List[str]:
    """Overrides as `spacy train` takes them on the command line."""
    return [
        f"--{key}={value if isinstance(value, str) else json.dumps(value)}"
        for key, value in settings.items()
    ]


@dataclass
class Trained:
    nlp: Language
    optimizer: Optimizer
    listeners: list
    examples: List[Example]
    first: Dict[str, float]
    last: Dict[str, float]
    heads: List[str]


def train_config(name: str, data: Path, extra: Optional[Dict[str, Any]] = None, steps: int = 5):
    """Initialize configs/NAME.cfg on the tiny data and take `steps` updates on all of it, as
    spaCy's training loop does: the schedules stepped after each update, a dev score
    published to the schedules that listen for one (at step 0, as spaCy evaluates then)."""
    config = load_config(CONFIGS / f"{name}.cfg", overrides=overrides(name, data, extra))
    nlp = init_nlp(config)
    optimizer, train_corpus = resolve_dot_names(
        nlp.config.interpolate(), ["training.optimizer", "corpora.train"]
    )
    listeners = claim_listeners()  # as the logger of `spacy train` does
    examples = list(train_corpus(nlp))
    first = nlp.update(examples, sgd=optimizer)
    optimizer.step_schedules()
    if listeners:
        publish_dev_score(listeners, {"score": 0.0, "step": 0, "epoch": 0})
    last = first
    for _ in range(steps - 1):
        last = nlp.update(examples, sgd=optimizer)
        optimizer.step_schedules()
    return Trained(nlp, optimizer, listeners, examples, first, last, heads(nlp.config))
