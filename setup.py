from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
version = {}
exec((ROOT / "spacy_lmcrf" / "about.py").read_text(), version)

# Everything spacy_lmcrf/, benchmarks/ and tests/ import, declared here (tests/test_packaging.py
# checks it): the package itself, the benchmark scripts (bench), the tests (test: the tests also
# run the benchmark scripts and spacy-transformers' configs). The linters (lint) are pinned
# exactly, since each release changes what they report; the test extra holds them so that the
# README's one install command is all CI (and a contributor) needs to lint and test.
TRANSFORMERS = ["spacy-transformers>=1.3.0,<1.5.0"]
BENCH = ["matplotlib>=3.5"]
LINT = ["ruff==0.17.6", "mypy==1.19.1"]
# setuptools>=70.1 for tests/tools/test_package.py: `spacy lmcrf package` builds wheels offline
# (pip wheel --no-build-isolation), which needs setuptools' own bdist_wheel, and a new venv of
# Python 3.11 has setuptools 65.5, without it.
# Ray Data for `spacy lmcrf annotate --engine ray` (the module imports it only then)
RAY = ["ray[data]>=2.9,<3"]
TEST = ["pytest>=7", "weasel>=1.0.1", "setuptools>=70.1", *TRANSFORMERS, *BENCH, *LINT, *RAY]

setup(
    name="spacy-lmcrf",
    version=version["__version__"],
    description="LM-augmented CRF sequence labeling (LM-LSTM-CRF and friends) for spaCy v3",
    long_description=(ROOT / "README.md").read_text(encoding="utf8"),
    long_description_content_type="text/markdown",
    license="MIT",
    license_files=["LICENSE"],
    packages=find_packages(include=["spacy_lmcrf", "spacy_lmcrf.*"]),
    # the shipped configs (spacy_lmcrf/configs links to configs/), for `spacy lmcrf init-config`
    package_data={"spacy_lmcrf": ["configs/*.cfg"]},
    python_requires=">=3.10",
    install_requires=[
        "spacy>=3.8.0,<3.9.0",
        "thinc>=8.3.0,<8.4.0",
        "torch>=2.1",
        "srsly>=2.4.0",
        "numpy>=1.19",
        # imported directly (spaCy requires them too, with these lower bounds)
        "tqdm>=4.38.0",
        "typer>=0.3.0",
        "wasabi>=0.9.1",
    ],
    extras_require={
        "test": TEST,
        "bench": BENCH,
        "lint": LINT,
        "ray": RAY,
        "transformers": TRANSFORMERS,
    },
    entry_points={
        "spacy_factories": [
            "lm_crf_ner = spacy_lmcrf.pipeline.ner:make_lm_crf_ner",
            "lm_crf_tagger = spacy_lmcrf.pipeline.tagger:make_lm_crf_tagger",
            "lm_crf_spans = spacy_lmcrf.pipeline.spans:make_lm_crf_spans",
        ],
        "spacy_architectures": [
            "spacy_lmcrf.CRFTagger.v1 = spacy_lmcrf.ml.models.crf_tagger:build_crf_tagger",
            "spacy_lmcrf.LMLSTMTok2Vec.v1 = spacy_lmcrf.ml.models.lm_lstm_tok2vec:build_lm_lstm_tok2vec",
            "spacy_lmcrf.WordCharTok2Vec.v1 = spacy_lmcrf.ml.models.word_char_tok2vec:build_word_char_tok2vec",
            "spacy_lmcrf.WordEmbedding.v1 = spacy_lmcrf.ml.models.word_embed:build_word_embedding",
            "spacy_lmcrf.CharBiLSTM.v1 = spacy_lmcrf.ml.models.char_encoders:build_char_bilstm",
            "spacy_lmcrf.CharCNN.v1 = spacy_lmcrf.ml.models.char_encoders:build_char_cnn",
            "spacy_lmcrf.CharBiGRU.v1 = spacy_lmcrf.ml.models.char_encoders:build_char_bigru",
            "spacy_lmcrf.BiLSTMEncoder.v1 = spacy_lmcrf.ml.models.encoders:build_bilstm_encoder",
            "spacy_lmcrf.BiGRUEncoder.v1 = spacy_lmcrf.ml.models.encoders:build_bigru_encoder",
            "spacy_lmcrf.TorchEncoder.v1 = spacy_lmcrf.ml.models.torch_encoder:build_torch_encoder",
            "spacy_lmcrf.WithWidth.v1 = spacy_lmcrf.ml.models.with_width:build_with_width",
            "spacy_lmcrf.CharTok2Vec.v1 = spacy_lmcrf.ml.models.char_tok2vec:build_char_tok2vec",
            "spacy_lmcrf.WordFeaturesTok2Vec.v1 = spacy_lmcrf.ml.models.word_features_tok2vec:build_word_features_tok2vec",
            "spacy_lmcrf.PSATok2Vec.v1 = spacy_lmcrf.ml.models.psa_tok2vec:build_psa_tok2vec",
            "spacy_lmcrf.ContextFusion.v1 = spacy_lmcrf.ml.models.context_fusion:build_context_fusion",
            "spacy_lmcrf.ContextualStringEmbeddings.v1 = spacy_lmcrf.ml.models.contextual_string_embeddings:build_contextual_string_embeddings",
            "spacy_lmcrf.StackedEmbeddings.v1 = spacy_lmcrf.ml.models.stacked_embeddings:build_stacked_embeddings",
            "spacy_lmcrf.BiLMEmbeddings.v1 = spacy_lmcrf.ml.models.bilm_embeddings:build_bilm_embeddings",
            "spacy_lmcrf.TagLMTok2Vec.v1 = spacy_lmcrf.ml.models.taglm_tok2vec:build_taglm_tok2vec",
        ],
        "thinc_optimizers": [
            "spacy_lmcrf.SGD.v1 = spacy_lmcrf.training.optimizers:SGD_momentum",
            "spacy_lmcrf.Adagrad.v1 = spacy_lmcrf.training.optimizers:adagrad",
            "spacy_lmcrf.Adam.v1 = spacy_lmcrf.training.optimizers:adam",
        ],
        "thinc_schedules": [
            "spacy_lmcrf.inverse_time_decay.v1 = spacy_lmcrf.training.optimizers:inverse_time_decay",
            "spacy_lmcrf.anneal_on_loss_plateau.v1 = spacy_lmcrf.training.optimizers:anneal_on_loss_plateau",
            "spacy_lmcrf.drop_after_best_dev.v1 = spacy_lmcrf.training.optimizers:drop_after_best_dev",
        ],
        "spacy_loggers": [
            "spacy_lmcrf.TimedLogger.v1 = spacy_lmcrf.training.loggers:timed_logger",
            "spacy_lmcrf.DevScoreLogger.v1 = spacy_lmcrf.training.loggers:dev_score_logger",
        ],
        "spacy_readers": [
            "spacy_lmcrf.GoldTokenCorpus.v1 = spacy_lmcrf.training.corpus:create_gold_token_corpus",
            "spacy_lmcrf.TaskCorpora.v1 = spacy_lmcrf.training.corpus:create_task_corpora",
        ],
        "spacy_batchers": [
            "spacy_lmcrf.task_batcher.v1 = spacy_lmcrf.training.corpus:create_task_batcher",
            "spacy_lmcrf.batch_by_length.v1 = spacy_lmcrf.training.batchers:create_length_batcher",
        ],
        "spacy_cli": [
            "lmcrf = spacy_lmcrf.cli:lmcrf_cli",
        ],
        "spacy_callbacks": [
            "spacy_lmcrf.stop_after_minutes.v1 = spacy_lmcrf.training.callbacks:stop_after_minutes",
            "spacy_lmcrf.set_meta.v1 = spacy_lmcrf.training.callbacks:set_meta",
            "spacy_lmcrf.before_update_all.v1 = spacy_lmcrf.training.callbacks:before_update_all",
            "spacy_lmcrf.trim_heap.v1 = spacy_lmcrf.training.memory:trim_heap",
        ],
    },
    classifiers=[
        "Framework :: spaCy",
        "License :: OSI Approved :: MIT License",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
