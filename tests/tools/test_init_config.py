"""spacy lmcrf init-config: a shipped config, its per-epoch step counts fitted to the data."""

import pytest
import typer
from spacy.util import load_config
from typer.testing import CliRunner

from spacy_lmcrf.init_config import (
    CONFIG_DIR,
    available,
    count_training_data,
    init_config_cli,
    shipped_config_path,
)

from ..util import convert_ner_sample


def _run(*args):
    app = typer.Typer()
    app.command()(init_config_cli)
    result = CliRunner().invoke(app, [str(a) for a in args])
    result.text = " ".join(result.output.split())  # wasabi wraps long lines
    return result


def test_shipped_configs_are_in_the_package():
    assert (CONFIG_DIR / "lmcrf_ner.cfg").is_file()
    pairs = available()
    for task in ("ner", "chunk", "pos"):
        assert ("lmcrf", task) in pairs
    assert ("taglm", "ner") in pairs and ("flair", "pos") in pairs
    with pytest.raises(ValueError, match="lmcrf/ner"):
        shipped_config_path("lmcrf", "parsing")


def test_step_counts_are_fitted_to_the_training_data(tmp_path):
    train = convert_ner_sample(tmp_path) / "sample_train.spacy"
    n_docs, n_words, n_multi = count_training_data(train)
    assert n_docs == 300 and n_words > n_docs and n_multi == 0
    out = tmp_path / "config.cfg"
    result = _run(out, "--system", "lmcrf", "--task", "ner", "--train", train, "--lang", "en")
    assert result.exit_code == 0, result.output
    config = load_config(out, interpolate=False)
    shipped = load_config(shipped_config_path("lmcrf", "ner"), interpolate=False)
    training = config["training"]
    # 300 one-sentence docs in batches of 10: 30 batches an epoch; patience still 15 epochs
    assert training["eval_frequency"] == 30
    assert training["optimizer"]["learn_rate"]["steps_per_epoch"] == 30
    assert training["patience"] == 15 * 30
    assert (
        training["optimizer"]["learn_rate"]["initial_rate"]
        == (shipped["training"]["optimizer"]["learn_rate"]["initial_rate"])
    )
    assert config["components"] == shipped["components"]
    assert out.read_text().splitlines()[2].startswith("# LM-LSTM-CRF (Liu et al. 2018)")


def test_batch_by_words_epoch_and_clear_errors(tmp_path):
    train = convert_ner_sample(tmp_path) / "sample_train.spacy"
    _, n_words, _ = count_training_data(train)
    out = tmp_path / "bilstm.cfg"
    assert _run(out, "--system", "bilstm_crf", "--task", "ner", "--train", train).exit_code == 0
    batch_words = load_config(shipped_config_path("bilstm_crf", "ner"))["training"]["batcher"][
        "size"
    ]
    assert load_config(out)["training"]["eval_frequency"] == -(-n_words // batch_words)
    result = _run(tmp_path / "x.cfg", "--system", "nope")
    assert result.exit_code == 1 and "no shipped config" in result.text
    result = _run(tmp_path / "x.cfg", "--train", tmp_path / "missing.spacy")
    assert result.exit_code == 1 and "no such file" in result.text
