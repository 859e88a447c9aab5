"""What each system's configs promise beyond the harness (test_configs.py): LM-LSTM-CRF's
inline LM loss, Flair's heads of Table 3 and annealing, the hierarchical GRU's margin cost,
AdaGrad and alternating joint tasks, PSA's ablations, TagLM's LM positions and schedule.
Runs that the harness also makes are shared with it (the `trained` fixture)."""

import pytest
from spacy.util import load_config, resolve_dot_names

from spacy_lmcrf.training.optimizers import DropAfterBestDevSchedule

from .harness import CONFIGS

# -- LM-LSTM-CRF -----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lmcrf_chunk", "lmcrf_pos", "lmcrf_ner"])
def test_lmcrf_config_reports_the_inline_lm_loss(name, trained):
    run = trained(name)
    (head,) = run.heads
    assert run.first[head] > 0 and f"{head}_lm" in run.first


# -- Flair (contextual string embeddings) ----------------------------------------------

FLAIR_HEADS = {
    "bilstm_crf": {},
    "map_crf": {"{head}.tok2vec.encoder": None},
    "map": {"{head}.tok2vec.encoder": None, "{head}.pairwise": "none"},
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "task,head",
    [(t, "bilstm_crf") for t in ("ner", "chunk", "pos")] + [("ner", "map_crf"), ("ner", "map")],
)
def test_flair_heads_of_table_3_train_and_anneal_on_the_losses(task, head, trained):
    run = trained(f"flair_{task}", **FLAIR_HEADS[head])
    (component,) = run.heads
    assert 0 < run.last[component] < run.first[component]
    assert run.optimizer.schedules["learn_rate"].history, (
        "the annealing schedule saw the epochs' losses"
    )


# -- hierarchical GRU-CRF (Yang et al. 2016) ---------------------------------------------

HIER_GRU_SINGLE = ["hier_gru_chunk", "hier_gru_ner", "hier_gru_ner_es", "hier_gru_pos"]
JOINT = {
    "yang_multitask_en": ["pos", "chunk", "ner"],
    "yang_joint_ner_pos": ["pos", "ner"],
    "yang_joint_chunk_ner": ["chunk", "ner"],
}
HEAD_OF = {"pos": "lm_crf_tagger", "chunk": "lm_crf_spans", "ner": "lm_crf_ner"}


@pytest.mark.slow
@pytest.mark.parametrize("name", HIER_GRU_SINGLE)
def test_hier_gru_config_has_margin_cost_5_and_adagrad(name, trained):
    config = load_config(CONFIGS / f"{name}.cfg")
    run = trained(name)
    (head,) = run.heads
    assert config["components"][head]["margin_cost"] == 5.0
    assert type(run.optimizer).__name__ == "Adagrad"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(JOINT))
def test_joint_config_alternates_tasks_and_labels_every_head(name, trained):
    nlp = trained(name).nlp
    train_corpus, batcher = resolve_dot_names(
        nlp.config.interpolate(), ["corpora.train", "training.batcher"]
    )
    batches = list(batcher(list(train_corpus(nlp))))
    tasks = JOINT[name]
    # one task per batch, the tasks taking turns
    batch_tasks = [{eg.reference.user_data["lmcrf_corpus"] for eg in batch} for batch in batches]
    assert all(len(t) == 1 for t in batch_tasks)
    order = [t.pop() for t in batch_tasks]
    assert order[: len(tasks)] == sorted(order[: len(tasks)], key=tasks.index) and set(
        order[: len(tasks)]
    ) == set(tasks)
    for head in (HEAD_OF[t] for t in tasks):
        assert nlp.get_pipe(head).labels


# -- PSA (Wei et al.) ------------------------------------------------------------------

PSA_BASELINE = {"{head}.tok2vec.fuse_input": False, "{head}.tok2vec.fuse_output": False}
PSA_ABLATIONS = {
    "all": {},
    "baseline": PSA_BASELINE,
    "no-mask": {"{head}.tok2vec.fusion.self_disabled_mask": False},
    "no-P-no-G": {
        "{head}.tok2vec.fusion.relative_position": False,
        "{head}.tok2vec.fusion.gaussian": False,
    },
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "task,ablation",
    [(t, "all") for t in ("ner", "chunk", "pos")]
    + [("ner", name) for name in PSA_ABLATIONS if name != "all"],
)
def test_psa_ablations_train_and_the_baseline_has_no_fusion(task, ablation, trained):
    """The BiLSTM-CRF baseline is psa_ner.cfg with both fusion layers switched off."""
    run = trained(f"psa_{task}", **PSA_ABLATIONS[ablation])
    (component,) = run.heads
    tok2vec = run.nlp.get_pipe(component).model.get_ref("tok2vec")
    module = tok2vec.get_ref("encoder").shims[0]._model
    assert (module.input_fusion is None) == (ablation == "baseline")
    assert 0 < run.last[component] < run.first[component]


# -- TagLM (Peters et al. 2017) ----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "task,with_lm,position",
    [
        ("ner", True, "layer1"),
        ("ner", True, "input"),
        ("ner", True, "layer2"),
        ("ner", False, "layer1"),
        ("chunk", True, "layer1"),
    ],
)
def test_taglm_trains_at_each_lm_position_and_without_lm(task, with_lm, position, trained):
    extra = {"{head}.tok2vec.lm_position": position}
    if not with_lm:
        extra["{head}.tok2vec.bilm"] = None
    run = trained(f"taglm_{task}", **extra)
    (component,) = run.heads
    schedule = run.optimizer.schedules["learn_rate"]
    assert isinstance(schedule, DropAfterBestDevSchedule) and run.optimizer.grad_norm_clip == 5.0
    assert schedule in run.listeners  # claimed as the logger of `spacy train` does
    assert 0 < run.last[component] < run.first[component]
    model = run.nlp.get_pipe(component).model
    has_lm = any(node.name == "bilm_embeddings" for node in model.walk())
    assert has_lm == with_lm
