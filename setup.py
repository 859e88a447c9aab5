from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
version = {}
exec((ROOT / "spacy_lmcrf" / "about.py").read_text(), version)

setup(
    name="spacy-lmcrf",
    version=version["__version__"],
    description="LM-augmented CRF sequence labeling (LM-LSTM-CRF and friends) for spaCy v3",
    long_description=(ROOT / "README.md").read_text(encoding="utf8"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["spacy_lmcrf", "spacy_lmcrf.*"]),
    python_requires=">=3.9",
    install_requires=[
        "spacy>=3.8.0,<3.9.0",
        "thinc>=8.3.0,<8.4.0",
        "torch>=2.1",
        "srsly>=2.4.0",
        "numpy>=1.19",
    ],
    extras_require={"test": ["pytest>=7"]},
    entry_points={
        "spacy_factories": [
            "lm_crf_ner = spacy_lmcrf.pipeline.ner:make_lm_crf_ner",
            "lm_crf_tagger = spacy_lmcrf.pipeline.tagger:make_lm_crf_tagger",
            "lm_crf_spans = spacy_lmcrf.pipeline.spans:make_lm_crf_spans",
        ],
        "spacy_architectures": [
            "spacy_lmcrf.CRFTagger.v1 = spacy_lmcrf.ml.crf_tagger:build_crf_tagger",
            "spacy_lmcrf.LMLSTMTok2Vec.v1 = spacy_lmcrf.ml.lm_lstm_tok2vec:build_lm_lstm_tok2vec",
        ],
        "thinc_optimizers": [
            "spacy_lmcrf.SGD.v1 = spacy_lmcrf.optimizers:SGD_momentum",
        ],
        "thinc_schedules": [
            "spacy_lmcrf.inverse_time_decay.v1 = spacy_lmcrf.optimizers:inverse_time_decay",
        ],
        "spacy_loggers": [
            "spacy_lmcrf.TimedLogger.v1 = spacy_lmcrf.loggers:timed_logger",
        ],
        "spacy_readers": [
            "spacy_lmcrf.GoldTokenCorpus.v1 = spacy_lmcrf.corpus:create_gold_token_corpus",
        ],
        "spacy_callbacks": [
            "spacy_lmcrf.stop_after_minutes.v1 = spacy_lmcrf.callbacks:stop_after_minutes",
        ],
    },
    classifiers=[
        "Framework :: spaCy",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
