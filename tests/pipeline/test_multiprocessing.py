"""nlp.pipe(texts, n_process=2) with an lm_crf_ner pipeline returns, with the same entities
as n_process=1, after the parent has run torch on two threads (the state in which a forked
worker used to hang: GNU OpenMP does not survive a fork, spacy_lmcrf.threads)."""

import os
import subprocess
import sys
import textwrap

import pytest

from spacy_lmcrf.threads import THREADS_ENV, threads_from_env

from ..util import ROOT

SCRIPT = textwrap.dedent(
    """
    import torch
    import spacy_lmcrf  # noqa: F401 (the fork rule is set up on import)
    from tests.util import NER_DATA, make_nlp, ner_examples, train

    torch.set_num_threads(2)
    nlp = make_nlp("lm_crf_ner")
    train(nlp, ner_examples(nlp), 30)
    texts = [text for text, _ in NER_DATA] * 20
    ents = lambda docs: [[(e.start, e.end, e.label_) for e in doc.ents] for doc in docs]
    one = ents(nlp.pipe(texts, batch_size=4))
    assert torch.get_num_threads() == 2  # the parent has used its threads
    two = ents(nlp.pipe(texts, batch_size=4, n_process=2))
    assert one == two, (one, two)
    assert any(one), "the trained pipeline found no entity"
    print("same entities", len(two))
    """
)


@pytest.mark.slow
def test_pipe_with_two_processes_returns_the_same_entities():
    env_without_thread_caps = {
        key: value
        for key, value in os.environ.items()
        if key not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", THREADS_ENV)
    }
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env_without_thread_caps,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "same entities 80" in result.stdout


def test_forked_process_runs_torch_on_one_thread():
    script = textwrap.dedent(
        """
        import os, torch
        import spacy_lmcrf  # noqa: F401
        torch.set_num_threads(2)
        torch.ones(1000, 1000) @ torch.ones(1000, 1000)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(write, str(torch.get_num_threads()).encode())
            os._exit(0)
        os.waitpid(pid, 0)
        print("child threads", os.read(read, 8).decode())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "child threads 1" in result.stdout


@pytest.mark.parametrize("value,threads", [(None, None), ("", None), ("1", 1), (" 3 ", 3)])
def test_threads_from_env(value, threads):
    assert threads_from_env(value) == threads


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_threads_from_env_rejects_bad_values(value):
    with pytest.raises(ValueError, match=THREADS_ENV):
        threads_from_env(value)
