"""The benchmark scripts (benchmarks/scripts/), their README, the project workflows, and the
corpus split commands."""

import fnmatch
import importlib
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from spacy.tokens import Doc, DocBin
from spacy.util import registry
from spacy.vocab import Vocab
from thinc.api import Config
from weasel.util import load_project_config

from spacy_lmcrf.conll import count_conll
from spacy_lmcrf.conll import main as conll_main

from ..util import convert_ner_sample

ROOT = Path(__file__).parents[2]
BENCHMARKS = ROOT / "benchmarks"
SCRIPTS = BENCHMARKS / "scripts"
SAMPLE = ROOT / "assets" / "conll03_sample"
TINY = {"char_dim": 8, "char_hidden": 16, "width": 16, "min_freq": 1}
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def script_names():
    return sorted(path.stem for path in SCRIPTS.glob("*.py"))


def bench(name: str):
    """Import a script of benchmarks/scripts/ (they import their neighbour common.py by name, as
    `python benchmarks/scripts/NAME.py` finds it: that folder goes on sys.path)."""
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    return importlib.import_module(name)


def tiny_cli(component: str = "lm_crf_ner"):
    args = []
    for key, value in TINY.items():
        args += [f"--components.{component}.model.tok2vec.{key}", str(value)]
    return args


@pytest.fixture(scope="module")
def sample_corpus(tmp_path_factory):
    tmp = convert_ner_sample(tmp_path_factory.mktemp("corpus"), prefix="")
    dev = list(DocBin().from_disk(tmp / "dev.spacy").get_docs(Vocab()))
    DocBin(docs=dev[:30]).to_disk(tmp / "dev30.spacy")
    return tmp


@pytest.mark.slow
def test_budget_run_stops_and_summarizes(tmp_path, sample_corpus):
    out = tmp_path / "run"
    summary_path = tmp_path / "summaries" / "seed3.json"
    corpus = sample_corpus
    # Run as a script, as project.yml does: it starts `spacy train` itself.
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPTS / "budget.py"),
            str(ROOT / "configs" / "lmcrf_ner.cfg"),
            str(out),
            "--train",
            str(corpus / "train.spacy"),
            "--dev",
            str(corpus / "dev30.spacy"),
            "--test",
            str(corpus / "dev30.spacy"),
            "--budget-minutes",
            "0.0001",
            "--seed",
            "3",
            "--name",
            "tiny",
            "--summary",
            str(summary_path),
            "--corpora.train.@readers",
            "spacy_lmcrf.GoldTokenCorpus.v1",
            "--corpora.dev.@readers",
            "spacy_lmcrf.GoldTokenCorpus.v1",
            "--training.eval_frequency",
            "1",
            *tiny_cli(),
        ],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "budget is spent (step 1, epoch 0" in result.stdout
    summary = json.loads(summary_path.read_text())
    assert summary["name"] == "tiny" and summary["seed"] == 3
    assert summary["steps"] == 1 and summary["stopped_by_budget"]
    assert len(summary["curve"]) == 1 and summary["curve"][0]["step"] == 0
    assert summary["dev"]["spacy_scorer_agrees"] and summary["test"]["spacy_scorer_agrees"]
    assert summary["dev_f1"] == summary["dev"]["f1"] == summary["test_f1"]
    assert "--training.eval_frequency" in summary["overrides"]
    assert set(summary["dev_by_model"]) == {"model-best", "model-last"}
    assert summary["dev_f1"] == max(summary["dev_by_model"].values())
    selected = summary["selected_model"]
    for name in (
        "model-best",
        "model-last",
        "log.jsonl",
        "config.budget.cfg",
        "eval/dev.model-best.conll.txt",
        "eval/dev.model-last.json",
        f"eval/test.{selected}.json",
    ):
        assert (out / name).exists(), name
    config = (out / "config.budget.cfg").read_text()
    assert "spacy_lmcrf.stop_after_minutes.v1" in config and "spacy_lmcrf.TimedLogger.v1" in config


def test_budget_keeps_the_configs_before_update(tmp_path):
    """lmcrf_ner.cfg trims the heap before each update: the budget runs beside it."""
    budget = bench("budget")
    config_path = ROOT / "configs" / "lmcrf_ner.cfg"
    trim = {"@callbacks": "spacy_lmcrf.trim_heap.v1", "every": 20}
    budgeted = budget.budget_config(config_path, tmp_path / "log.jsonl", 5)
    chained = budgeted["training"]["before_update"]
    assert chained["@callbacks"] == "spacy_lmcrf.before_update_all.v1"
    assert chained["*"]["existing"] == trim
    assert chained["*"]["budget"] == {
        "@callbacks": "spacy_lmcrf.stop_after_minutes.v1",
        "minutes": 5,
    }
    before_update = registry.resolve(
        Config({"x": budgeted["training"]["before_update"]}).interpolate()
    )["x"]
    before_update(None, {"step": 0, "epoch": 0})
    unbudgeted = budget.budget_config(config_path, tmp_path / "log.jsonl", 0)["training"]
    assert unbudgeted["before_update"] == trim
    assert unbudgeted["logger"]["@loggers"] == "spacy_lmcrf.TimedLogger.v1"


def test_seeds_runs_each_seed(tmp_path):
    seeds = bench("seeds")
    code = seeds.main(
        [
            "--first-seed",
            "2",
            "3",
            "python",
            "-c",
            f"open(r'{tmp_path}/s{{seed}}', 'w').write('{{seed}}')",
        ]
    )
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s2", "s3", "s4"]
    assert seeds.main(["2", "python", "-c", "import sys; sys.exit(3)", "{seed}"]) == 3
    with pytest.raises(SystemExit):
        seeds.main(["2", "echo", "no placeholder"])


def _summary(path: Path, seed: int, f1: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    curve = [
        {"seconds": 60.0 * i, "step": i, "epoch": 0, "words": i, "score": f1 * i / 3}
        for i in range(4)
    ]
    path.write_text(
        json.dumps({"seed": seed, "test_f1": f1, "dev_f1": f1 + 1, "steps": 10, "curve": curve})
    )
    return path


def test_aggregate_mean_std(tmp_path, capsys):
    aggregate = bench("aggregate")
    for seed, f1 in enumerate([90.0, 91.0, 92.5]):
        _summary(tmp_path / "a" / f"seed{seed}.json", seed, f1)
    _summary(tmp_path / "b" / "seed0.json", 0, 80.0)
    out = tmp_path / "summary.json"
    code = aggregate.main(
        [
            "--n-seeds",
            "3",
            f"a={tmp_path}/a/seed{{seed}}.json",
            f"b={tmp_path}/b/*.json",
            "--keys",
            "test_f1",
            "dev_f1",
            "--output",
            str(out),
            "--markdown",
            str(tmp_path / "s.md"),
        ]
    )
    assert code == 0
    groups = json.loads(out.read_text())["groups"]
    stat = groups["a"]["metrics"]["test_f1"]
    assert stat["mean"] == pytest.approx(91.1666666)
    assert stat["std"] == pytest.approx(1.2583057)  # sample std, n - 1
    assert groups["b"]["metrics"]["test_f1"]["std"] is None
    table = capsys.readouterr().out
    assert "| a | 91.17 ± 1.26 (n=3) | 92.17 ± 1.26 (n=3) |" in table
    assert aggregate.main(["--n-seeds", "4", f"{tmp_path}/a/seed{{seed}}.json"]) == 1
    assert aggregate.main([f"{tmp_path}/a/*.json", "--keys", "nope"]) == 1


def _budget_summary(path, seed, metric, dev, test, words_per_second=1000.0):
    """A budget.py summary as task_table.py reads it."""
    curve = [
        {"seconds": 60.0 * i, "step": 10 * i, "epoch": 0, "words": 600 * i, "score": dev}
        for i in range(1, 4)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "seed": seed,
        "metric": metric,
        "steps": 30 + seed,
        "budget_minutes": 30,
        "curve": curve,
        f"dev_{metric}": dev,
        f"test_{metric}": test,
        "test": {"words_per_second": words_per_second},
    }
    path.write_text(json.dumps(summary))
    return path


def test_task_table_rows(tmp_path, capsys):
    task_table = bench("task_table")
    for seed, (dev, test) in enumerate([(96.0, 95.0), (97.0, 96.0)]):
        _budget_summary(tmp_path / "a" / f"seed{seed}.json", seed, "accuracy", dev, test, 2000.0)
    _budget_summary(tmp_path / "b" / "seed0.json", 0, "accuracy", 90.0, 89.5, 500.0)
    out = tmp_path / "table.json"
    code = task_table.main(
        [
            "--n-seeds",
            "2",
            f"ours={tmp_path}/a/seed{{seed}}.json",
            f"peer={tmp_path}/b/*.json",
            "--output",
            str(out),
            "--markdown",
            str(tmp_path / "table.md"),
        ]
    )
    assert code == 0
    table = capsys.readouterr().out
    assert (
        "| system | seeds | steps (mean) | training words/s | dev accuracy | test accuracy |"
        in table
    )
    # 1,800 words by 180 s; sample std of 95 and 96
    ours = "| ours | 2 | 30 | 10 | 96.50 ± 0.71 | 95.50 ± 0.71 | 95.00 (96.00), 96.00 (97.00) |"
    assert ours + " 2,000 |" in table
    assert "| peer | 1 | 30 | 10 | 90.00 | 89.50 | 89.50 (90.00) | 500 |" in table
    assert (tmp_path / "table.md").read_text() == table
    systems = json.loads(out.read_text())["systems"]
    assert systems["ours"]["test"] == [95.0, 96.0] and systems["peer"]["test_std"] is None


def test_task_table_refuses_what_it_cannot_compare(tmp_path, capsys):
    task_table = bench("task_table")
    _budget_summary(tmp_path / "seed0.json", 0, "accuracy", 96.0, 95.0)
    _budget_summary(tmp_path / "seed1.json", 1, "f1", 90.0, 89.0)
    (tmp_path / "other.json").write_text(json.dumps({"test_f1": 90.0}))
    assert task_table.main([f"mixed={tmp_path}/seed*.json"]) == 1
    assert "mix metrics ['accuracy', 'f1']" in capsys.readouterr().err
    assert task_table.main([f"x={tmp_path}/other.json"]) == 1
    assert "not a budget.py summary (no metric, seed, steps, curve, test" in capsys.readouterr().err


def test_plot_curves_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    plot_curves = bench("plot_curves")
    paths = [_summary(tmp_path / f"seed{seed}.json", seed, 90.0 + seed) for seed in range(2)]
    log = tmp_path / "log.jsonl"
    log.write_text(
        json.dumps({"event": "evaluate", "seconds": 30.0, "score": 0.5})
        + "\n"
        + json.dumps({"event": "end", "seconds": 31.0, "steps": 3})
        + "\n"
    )
    assert plot_curves.read_curve(paths[1])[-1] == (3.0, 91.0)
    assert plot_curves.read_curve(log) == [(0.5, 50.0)]
    assert plot_curves.read_curve(paths[1], "epochs", 2)[-1] == (1.5, 91.0)
    with pytest.raises(ValueError, match="without its step"):
        plot_curves.read_curve(log, "epochs", 2)
    with pytest.raises(ValueError, match="need steps_per_epoch"):
        plot_curves.read_curve(log, "epochs")
    out = tmp_path / "out" / "curves.png"
    assert (
        plot_curves.main(
            [f"a={tmp_path}/seed*.json", f"b={log}", "--output", str(out), "--budget-minutes", "3"]
        )
        == 0
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    by_epoch = tmp_path / "out" / "epochs.png"
    assert (
        plot_curves.main(
            [f"a={tmp_path}/seed*.json", "--output", str(by_epoch)]
            + ["--x", "epochs", "--steps-per-epoch", "2"]
        )
        == 0
    )
    assert by_epoch.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_curves.main([f"b={log}", "--output", str(by_epoch), "--x", "epochs"]) == 1


@pytest.mark.slow
def test_speed_lengths_measures_each_length(sample_corpus):
    speed = bench("speed_lengths")
    overrides = {f"components.lm_crf_ner.model.tok2vec.{k}": v for k, v in TINY.items()}
    rows = []
    for length in (10, 200):
        row = {"length": length}
        for phase in speed.PHASES:
            row.update(
                speed.measure(
                    ROOT / "configs" / "lmcrf_ner.cfg",
                    sample_corpus / "train.spacy",
                    sample_corpus / "dev.spacy",
                    length,
                    phase,
                    words=400,
                    train_words=200,
                    threads=1,
                    overrides=overrides,
                )
            )
        rows.append(row)
    assert rows[0]["infer_words"] == 400 and rows[0]["infer_docs"] == 40
    assert rows[1]["infer_docs"] == 2 and rows[1]["train_docs"] == 1
    assert all(r["infer_words_per_s"] > 0 and r["train_words_per_s"] > 0 for r in rows)
    assert rows[0]["infer_peak_rss_mib"] > 0 and rows[0]["infer_peak_gpu_mib"] is None
    verdict = speed.add_linearity(rows, reference_length=10, tolerance=1e9)
    assert verdict == {"cpu_infer": True, "cpu_train": True}
    assert rows[0]["infer_per_token_ratio"] == 1.0
    assert "| x | cpu | 200 |" in speed.markdown("x", rows)


@pytest.mark.slow
def test_speed_shared_runs_every_condition(tmp_path, sample_corpus):
    output = tmp_path / "shared.json"
    command = [
        sys.executable,
        str(SCRIPTS / "speed_shared.py"),
        str(ROOT / "configs" / "lmcrf_ner.cfg"),
    ]
    command += [str(sample_corpus / "train.spacy"), str(sample_corpus / "dev30.spacy")]
    command += ["--docs", "30", "--batch-size", "8", "--repeats", "1", "--output", str(output)]
    command += tiny_cli()
    result = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(output.read_text())["rows"]
    conditions = [(r["load"], r["threads"], r["n_process"]) for r in rows]
    assert conditions == [
        (load, t, n) for load in ("idle", "busy") for t, n in ((2, 1), (1, 1), (1, 2))
    ]
    assert all(r["words_per_s"] > 0 for r in rows) and rows[0]["vs_idle_2_threads"] == 1.0


@pytest.mark.slow
def test_kernels_measures_each_kernel(tmp_path):
    output = tmp_path / "kernels.json"
    command = [sys.executable, str(SCRIPTS / "kernels.py"), "--threads", "1", "--repeats", "1"]
    result = subprocess.run(
        [*command, "--output", str(output)], cwd=ROOT, env=ENV, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    kernels = json.loads(output.read_text())
    assert kernels["matmul_gflops"] > 0 and len(kernels["lstm"]) == 9
    assert all(value > 0 for value in kernels["dropout_step_ms"].values())


def test_speed_lengths_documents_have_no_sentence_boundaries(sample_corpus):
    speed = bench("speed_lengths")
    vocab = Vocab()
    stream = speed.token_stream(
        DocBin().from_disk(sample_corpus / "dev.spacy").get_docs(vocab), "ner", "chunks"
    )
    words, tags = speed.window(stream, len(stream[0]) - 3, len(stream[0]) + 5)
    assert words[3:] == stream[0][:5]  # the stream wraps around
    doc = speed.make_doc(vocab, words, tags, "ner")
    assert not doc.has_annotation("SENT_START") and doc.has_annotation("ENT_IOB")


# -- project.yml --------------------------------------------------------------------


@pytest.fixture(scope="module")
def project():
    return load_project_config(ROOT)


def test_project_workflows(project):
    commands = {c["name"]: c for c in project["commands"]}
    for workflow, steps in project["workflows"].items():
        assert all(step in commands for step in steps), workflow
    for name in (
        "conll03_ner",
        "conll00_chunk",
        "conll02_es_ner",
        "wsj_pos_sample",
        "bench_conll03_cpu",
    ):
        assert name in project["workflows"]
    assert project["workflows"]["demo"] == [
        "demo-convert",
        "demo-vectors",
        "demo-train",
        "demo-evaluate",
        "demo-annotate",
    ]
    assert (
        project["vars"]["gpu_id"],
        project["vars"]["demo_epochs"],
        project["vars"]["demo_steps_per_epoch"],
    ) == (-1, 30, 30)
    for name, steps_var in (
        ("conll03-train", "conll03_steps_per_epoch"),
        ("conll00-train", "conll00_steps_per_epoch"),
        ("conll02-train", "conll02_steps_per_epoch"),
        ("wsj-train", "wsj_steps_per_epoch"),
    ):
        script = commands[name]["script"][0]
        steps = project["vars"][steps_var]
        assert f"--training.optimizer.learn_rate.steps_per_epoch {steps} " in script
        assert f"--training.eval_frequency {steps} " in script
        assert "--paths.vectors" in script or name == "conll02-train"
    for path in (
        "benchmarks/scripts/budget.py",
        "benchmarks/scripts/speed_lengths.py",
        "benchmarks/scripts/plot_curves.py",
        "benchmarks/scripts/aggregate.py",
        "configs/spacy_ner_cpu.cfg",
    ):
        assert any(path in line for c in commands.values() for line in c["script"]), path


def test_project_counts_match_the_data(project, shared_data):
    """steps_per_epoch = ceil(training sentences / 10), and the splits fit the corpora."""
    v = project["vars"]
    n_conll03, _ = count_conll(shared_data / "conll2003_en" / "eng.train.gz")
    n_conll00, _ = count_conll(shared_data / "conll2000" / "train.txt.gz")
    n_conll02, _ = count_conll(shared_data / "conll2002" / "esp.train.gz")
    n_wsj, _ = count_conll(shared_data / "wsj_pos" / "nltk_treebank_sample.pos.gz")
    assert v["conll03_steps_per_epoch"] == math.ceil(n_conll03 / 10)
    assert v["conll00_steps_per_epoch"] == math.ceil((n_conll00 - v["conll00_n_dev"]) / 10)
    assert v["conll02_steps_per_epoch"] == math.ceil(n_conll02 / 10)
    assert v["wsj_n_sentences"] == n_wsj and 0 < v["wsj_train_end"] < v["wsj_dev_end"] < n_wsj
    assert v["wsj_steps_per_epoch"] == math.ceil(v["wsj_train_end"] / 10)
    for prefix in ("conll03", "conll00", "conll02", "wsj"):
        assert v[f"{prefix}_patience"] == 15 * v[f"{prefix}_steps_per_epoch"]


@pytest.mark.parametrize("name", ["spacy_ner_cpu.cfg", "spacy_ner_cpu_accuracy.cfg"])
def test_spacy_ner_config_uses_the_vectors(name):
    from spacy.util import load_config

    config = load_config(ROOT / "configs" / name)
    assert config["components"]["tok2vec"]["model"]["embed"]["include_static_vectors"] is True
    assert config["initialize"]["vectors"] == "${paths.vectors}"
    assert config["paths"]["vectors"] is None
    assert set(config["paths"]) >= {"train", "dev", "vectors"}


def test_vectors_attr_survives_a_saved_pipeline(tmp_path):
    """spaCy 3.8.18 drops the LOWER attr on save; the script writes it back, and spaCy's
    static vectors then find lowercased GloVe rows for capitalised words after a reload."""
    import numpy
    import spacy
    from spacy.attrs import LOWER, ORTH

    vectors_attr = bench("vectors_attr")
    nlp = spacy.blank("en")
    nlp.vocab.vectors = spacy.vectors.Vectors(strings=nlp.vocab.strings, shape=(2, 3), attr="LOWER")
    nlp.vocab.set_vector("paris", numpy.asarray([1.0, 2.0, 3.0], dtype="f"))
    nlp.to_disk(tmp_path / "pipeline")
    assert spacy.load(tmp_path / "pipeline").vocab.vectors.attr == ORTH  # the bug
    assert vectors_attr.main([str(tmp_path / "pipeline"), "--attr", "LOWER"]) == 0
    reloaded = spacy.load(tmp_path / "pipeline")
    assert reloaded.vocab.vectors.attr == LOWER
    keys = reloaded("Paris").to_array(reloaded.vocab.vectors.attr)
    assert reloaded.vocab.vectors.find(key=int(keys[0])) >= 0
    assert vectors_attr.main([str(tmp_path / "missing")]) == 1


# -- corpus commands -------------------------------------------------------------------


def test_slice_and_count(tmp_path, sample_corpus, capsys):
    docs = sample_corpus / "dev.spacy"
    assert (
        conll_main(
            ["slice", str(docs), str(tmp_path / "a" / "part.spacy"), "--start", "10", "--end", "25"]
        )
        == 0
    )
    part = list(DocBin().from_disk(tmp_path / "a" / "part.spacy").get_docs(Vocab()))
    every = list(DocBin().from_disk(docs).get_docs(Vocab()))
    assert [d.text for d in part] == [d.text for d in every[10:25]]
    assert (
        conll_main(["slice", str(docs), str(tmp_path / "b.spacy"), "--start", "90", "--end", "101"])
        == 1
    )
    assert "can't take docs 90:101 of 100" in capsys.readouterr().err
    sample = SAMPLE / "dev.iob"
    n_sentences, n_tokens = count_conll(sample)
    assert (
        conll_main(
            [
                "count",
                str(sample),
                "--expect-sentences",
                str(n_sentences),
                "--expect-tokens",
                str(n_tokens),
            ]
        )
        == 0
    )
    assert conll_main(["count", str(sample), "--expect-sentences", str(n_sentences + 1)]) == 1
    assert f"expected {n_sentences + 1} sentences, found {n_sentences}" in capsys.readouterr().err


def test_table8_sep_joint_delta(tmp_path):
    table8 = bench("table8")
    for setting, scores in (("sep", [70.0, 72.0]), ("joint_pos", [74.0, 75.0])):
        for seed, score in enumerate(scores):
            path = tmp_path / "ner_r0.1" / setting / f"seed{seed}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                json.dumps(
                    {
                        "metric": "f1",
                        "test_f1": score,
                        "dev_f1": score + 1,
                        "steps": 10,
                        "budget_minutes": 30,
                        "commit": "abc",
                    }
                )
            )
    out = tmp_path / "t8.md"
    assert (
        table8.main(
            [
                "ner:0.1:pos",
                "--root",
                str(tmp_path),
                "--n-seeds",
                "2",
                "--markdown",
                str(out),
                "--output",
                str(tmp_path / "t8.json"),
            ]
        )
        == 0
    )
    row = json.loads((tmp_path / "t8.json").read_text())["rows"][0]
    assert row["delta"] == pytest.approx(74.5 - 71.0)
    assert (
        "| NER 0.1 | POS | 71.00 ± 1.41 (n=2) | 74.50 ± 0.71 (n=2) | +3.50 | 10 / 10 | "
        "86.21 / 87.02 / +0.81 |" in out.read_text()
    )


def test_table8_lists_rows_not_run_and_refuses_missing_seeds(tmp_path, capsys):
    table8 = bench("table8")
    for setting in ("sep", "joint_pos"):
        path = tmp_path / "ner_r0.1" / setting / "seed0.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(
                {
                    "metric": "f1",
                    "test_f1": 80.0,
                    "dev_f1": 81.0,
                    "steps": 10,
                    "budget_minutes": 30,
                    "commit": "abc",
                }
            )
        )
    assert (
        table8.main(["ner:0.1:pos", "es:0.1:ner", "--root", str(tmp_path), "--n-seeds", "1"]) == 0
    )
    table = capsys.readouterr().out
    assert "| Span 0.1 | Eng | not run | not run | - | - | 74.53 / 76.52 / +1.99 |" in table
    assert "| NER 0.1 | POS | 80.00 (n=1) | 80.00 (n=1) | +0.00 |" in table
    assert table8.main(["ner:0.1:pos", "--root", str(tmp_path), "--n-seeds", "2"]) == 1
    assert "ner_r0.1/sep/seed1.json" in capsys.readouterr().err
    assert table8.main(["ner:ten:pos", "--root", str(tmp_path), "--n-seeds", "1"]) == 1


def test_budget_sets_the_paths_a_joint_config_names():
    budget = bench("budget")
    command = budget.train_command(
        Path("c.cfg"),
        Path("out"),
        train=Path("t.spacy"),
        dev=Path("d.spacy"),
        vectors=None,
        seed=0,
        gpu_id=-1,
        overrides=["--paths.pos_train", "p.spacy"],
        train_var="ner_train",
        dev_var="ner_dev",
    )
    assert command[command.index("--paths.ner_train") + 1] == "t.spacy"
    assert command[command.index("--paths.ner_dev") + 1] == "d.spacy"
    assert "--paths.train" not in command


def test_cse_neighbours_lists_one_context_per_entity_type(tmp_path):
    from ..util import save_tiny_char_lm

    cse_neighbours = bench("cse_neighbours")
    nlp_vocab = Vocab()
    docs = [
        Doc(
            nlp_vocab,
            words="Washington would also take action".split(),
            ents=["B-LOC", "O", "O", "O", "O"],
        ),
        Doc(
            nlp_vocab,
            words="Anthony Washington won the race".split(),
            ents=["B-PER", "I-PER", "O", "O", "O"],
        ),
        Doc(
            nlp_vocab,
            words="flown to Washington for talks".split(),
            ents=["O", "O", "B-LOC", "O", "O"],
        ),
        Doc(nlp_vocab, words="said Washington on Monday".split(), ents=["O", "B-ORG", "O", "O"]),
    ]
    DocBin(docs=docs).to_disk(tmp_path / "c.spacy")
    lm = save_tiny_char_lm(tmp_path / "char_lm.msgpack", 8)
    out = tmp_path / "n.md"
    cse_neighbours.main([str(lm), str(tmp_path / "c.spacy"), "--k", "2", "--output", str(out)])
    table = [line for line in out.read_text().splitlines() if line.startswith("| ")][1:]
    assert [line.split("**Washington**")[1].split(")")[0].split("(")[-1] for line in table] == [
        "LOC",
        "ORG",
        "PER",
    ]
    assert all(
        line.count("<br>") == 1 and "**Washington**" not in line.split(" | ")[1] for line in table
    )
    similarities = next(
        line for line in out.read_text().splitlines() if line.startswith("Cosine similarity")
    )
    values = [
        float(pair.split()[-1].rstrip(".,")) for pair in similarities.split(": ")[1].split(", ")
    ]
    assert len(values) == 3 and all(-1.0 <= v <= 1.0 for v in values)


# -- the layout: scripts/, results/, the README against scripts/ and project.yml ------

HELPERS = {"common"}  # imported by the scripts, not run by themselves
# files that name benchmark paths; the generated results/*.md record the commands that made
# them, as they ran, and are not checked
PATH_FILES = [
    ROOT / "project.yml",
    ROOT / "README.md",
    BENCHMARKS / "README.md",
    BENCHMARKS / "RESULTS.md",
    BENCHMARKS / "results" / "archive.md",
]


def readme_entries():
    """benchmarks/README.md's script entries: {name: text}, one per "### `NAME.py`" heading."""
    text = (BENCHMARKS / "README.md").read_text(encoding="utf8")
    parts = re.split(r"^### `(\w+)\.py`\s*$", text, flags=re.M)
    entries = {}
    for name, body in zip(parts[1::2], parts[2::2]):
        assert name not in entries, f"{name}.py is listed twice"
        entries[name] = re.split(r"^## ", body, flags=re.M)[0]
    return entries


def project_users(project):
    """{script name: the project.yml commands whose script runs benchmarks/scripts/NAME.py}"""
    users = {}
    for command in project["commands"]:
        for line in command.get("script", []):
            for name in re.findall(r"benchmarks/scripts/(\w+)\.py", line):
                users.setdefault(name, set()).add(command["name"])
    return users


def test_readme_lists_every_script_with_its_command():
    entries = readme_entries()
    assert sorted(entries) == script_names()
    for name, body in entries.items():
        if name not in HELPERS:
            assert f"python benchmarks/scripts/{name}.py" in body, name
        assert re.search(r"^project\.yml: ", body, flags=re.M), name


def test_readme_names_the_project_commands_that_run_each_script(project):
    """Each entry's "project.yml:" line (shell patterns, or "none") covers exactly the
    project.yml commands that run the script: no command left out, no stale pattern."""
    users = project_users(project)
    assert set(users) <= set(script_names()), "project.yml runs a script not in scripts/"
    for name, body in readme_entries().items():
        line = body.split("project.yml: ", 1)[1].split("\n\n", 1)[0]
        patterns = [] if line.strip() == "none" else re.findall(r"`([\w*?-]+)`", line)
        used = users.get(name, set())
        for command in used:
            assert any(fnmatch.fnmatchcase(command, p) for p in patterns), (name, command)
        for pattern in patterns:
            assert fnmatch.filter(used, pattern), f"{name}.py: no project command {pattern!r}"


def test_benchmark_paths_exist():
    """Every benchmarks/ path in project.yml, the READMEs, RESULTS.md and its archive exists,
    and so does every relative link of the benchmark markdown files."""
    for source in PATH_FILES:
        text = source.read_text(encoding="utf8")
        for path in re.findall(r"(?<![\w/.])benchmarks/[\w./-]*", text):
            path = path.rstrip(".")
            if "NAME" in path:  # a placeholder ("benchmarks/scripts/NAME.py")
                continue
            assert (ROOT / path).exists(), f"{source.relative_to(ROOT)}: {path}"
        if source.parent != ROOT:
            for link in re.findall(r"\]\(([^)#:]+)\)", text):
                assert (source.parent / link).exists(), f"{source.relative_to(ROOT)}: {link}"


def test_project_outputs_in_benchmarks_go_to_results(project):
    for command in project["commands"]:
        for path in command.get("outputs", []):
            if path.startswith("benchmarks/"):
                assert path.startswith("benchmarks/results/"), (command["name"], path)


@pytest.mark.parametrize("cwd", ["root", "elsewhere"])
def test_scripts_find_their_helpers_from_any_folder(tmp_path, cwd):
    """aggregate.py imports common.py by name: run as a file, from the repository root (a
    relative path) or from another folder (an absolute one), nothing but its own folder
    puts benchmarks/scripts/ on sys.path."""
    script = "benchmarks/scripts/aggregate.py" if cwd == "root" else str(SCRIPTS / "aggregate.py")
    result = subprocess.run(
        [sys.executable, script, "--help"],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=ROOT if cwd == "root" else tmp_path,
    )
    assert result.returncode == 0 and "usage: aggregate.py" in result.stdout, result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in script_names() if n not in HELPERS])
def test_every_script_starts_from_another_folder(tmp_path, name):
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / f"{name}.py"), "--help"],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=tmp_path,
    )
    assert result.returncode == 0 and f"usage: {name}.py" in result.stdout, result.stderr


def test_common_paths_are_the_repository_and_results():
    common = bench("common")
    assert common.ROOT == ROOT.resolve() and (common.ROOT / "project.yml").exists()
    assert common.RESULTS == ROOT.resolve() / "benchmarks" / "results" and common.RESULTS.is_dir()


@pytest.mark.slow
def test_annotate_engines_times_the_local_engine(tmp_path, sample_corpus):
    from tests.util import make_nlp, ner_examples, train

    nlp = make_nlp("lm_crf_ner")
    train(nlp, ner_examples(nlp), 2)
    nlp.to_disk(tmp_path / "model")
    output = tmp_path / "engines.json"
    command = [sys.executable, str(SCRIPTS / "annotate_engines.py"), str(tmp_path / "model")]
    command += [str(sample_corpus / "dev30.spacy"), str(output), "--docs", "30", "--shards", "3"]
    command += ["--engines", "local"]
    result = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(output.read_text())
    assert set(summary["runs"]) == {"local"} and summary["docs"] == 30
    local = summary["runs"]["local"]
    assert local["docs"] == 30 and local["tokens"] > 30 and local["tokens_per_second"] > 0
