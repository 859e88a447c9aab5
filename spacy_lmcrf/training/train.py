"""`spacy lmcrf train`: `spacy train`, with model-best and model-last saved atomically,
checkpoints, and `--resume`.

spaCy's training loop (spacy.training.loop.train, 3.8) writes model-last in place with
nlp.to_disk and replaces model-best by rmtree + copytree: a process killed while either is
being written leaves it unloadable. Here the same loop runs, built from spaCy's own public
functions, and both directories are written by spacy_lmcrf.training.atomic_save: at every moment
each is the complete previous pipeline or the complete new one (see that module for the
exact guarantee). The output directory's layout, the meta.json performance, the logger's
output and the callbacks ([training.before_update], [training.before_to_disk],
[initialize.after_init]) are spaCy's.

With a checkpoint cadence (every N minutes and/or N steps), OUTPUT/checkpoint also holds
everything a run needs to go on (spacy_lmcrf.training.checkpoint), written atomically, and
once more when training ends; `resume=True` goes on from it: the steps that follow are
those the run would have taken had it not stopped (the same batches, updates and
evaluations; on a CPU the same numbers).
"""

import sys
from contextlib import nullcontext
from pathlib import Path
from timeit import default_timer as timer
from typing import IO, Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

from spacy import util
from spacy.cli._util import setup_gpu, show_validation_error
from spacy.language import Language
from spacy.schemas import ConfigSchemaTraining
from spacy.training.initialize import init_nlp
from spacy.training.loop import (
    DIR_MODEL_BEST,
    DIR_MODEL_LAST,
    clean_output_dir,
    create_before_to_disk_callback,
    create_evaluation_callback,
    subdivide_batch,
    update_meta,
)
from thinc.api import Config, Optimizer, fix_random_seed, set_gpu_allocator
from wasabi import Printer, msg

from .atomic_save import (
    copy_directory_atomically,
    recover_interrupted_save,
    save_pipeline_atomically,
)
from .checkpoint import (
    DIR_CHECKPOINT,
    RESUMABLE_SETTINGS,
    Batch,
    Checkpoint,
    CheckpointCadence,
    ResumeError,
    TrainBatchStream,
    TrainingProgress,
    check_resumable_config,
    read_checkpoint,
    remove_finished_checkpoint,
    reseed_cupy,
    restore_optimizer,
    restore_random_states,
    write_checkpoint,
)
from .loggers import resumed_run


def train_pipeline(
    config_path: Union[str, Path],
    output_path: Optional[Union[str, Path]] = None,
    *,
    overrides: Dict[str, Any] = util.SimpleFrozenDict(),
    use_gpu: int = -1,
    checkpoint_minutes: float = 0.0,
    checkpoint_steps: int = 0,
    resume: bool = False,
    stdout: IO = sys.stdout,
    stderr: IO = sys.stderr,
) -> Tuple[Language, Optional[Path]]:
    """Initialize and train the pipeline of a config, as `spacy train` does (this mirrors
    spacy.cli.train.train), saving model-best and model-last atomically; or, with resume,
    go on from the checkpoint in output_path.

    config_path (Union[str, Path]): the training config.
    output_path (Optional[Union[str, Path]]): the output directory (None: nothing saved).
    overrides (Dict[str, Any]): config overrides, e.g. {"paths.train": "train.spacy"}.
    use_gpu (int): the GPU's id, or -1 for the CPU.
    checkpoint_minutes (float): write OUTPUT/checkpoint every this many minutes (0: not by time).
    checkpoint_steps (int): write OUTPUT/checkpoint every this many steps (0: not by steps).
    resume (bool): go on from OUTPUT/checkpoint; the config and overrides must be the
        checkpointed run's, but for checkpoint.RESUMABLE_SETTINGS.
    stdout (IO), stderr (IO): where the training loop and its logger write.
    RETURNS (Tuple[Language, Optional[Path]]): the trained pipeline and model-last's path.
    Raises ResumeError where resume cannot go on (no checkpoint, another config).
    """
    config_path = Path(config_path)
    output_path = Path(output_path) if output_path is not None else None
    cadence = CheckpointCadence(checkpoint_minutes, checkpoint_steps)
    if not config_path.exists():
        msg.fail("Config file not found", config_path, exits=1)
    if output_path is None:
        if resume or cadence.enabled:
            raise ResumeError("checkpoints and --resume need an output directory (--output)")
        msg.info("No output directory provided")
    else:
        if not output_path.exists():
            output_path.mkdir(parents=True)
            msg.good(f"Created output directory: {output_path}")
        msg.info(f"Saving to output directory: {output_path}")
    setup_gpu(use_gpu)
    with show_validation_error(config_path):
        config = util.load_config(config_path, overrides=overrides, interpolate=False)
    checkpoint = None
    if not resume and output_path is not None:
        remove_finished_checkpoint(output_path / DIR_CHECKPOINT)  # before the long init
    if resume:
        assert output_path is not None
        checkpoint = read_checkpoint(output_path / DIR_CHECKPOINT)
        check_resumable_config(checkpoint.config, config)
        progress = checkpoint.progress
        msg.divider("Resuming training")
        with show_validation_error(config_path, hint_fill=False):
            nlp = load_checkpointed_pipeline(checkpoint, config)
        msg.good(f"Loaded the checkpoint after step {progress.step - 1} (epoch {progress.epoch})")
    else:
        msg.divider("Initializing pipeline")
        with show_validation_error(config_path, hint_fill=False):
            nlp = init_nlp(config, use_gpu=use_gpu)
        msg.good("Initialized pipeline")
    msg.divider("Training pipeline")
    return train_initialized(
        nlp,
        output_path,
        use_gpu=use_gpu,
        stdout=stdout,
        stderr=stderr,
        checkpoint_cadence=cadence,
        resume_from=checkpoint,
        run_config=config,
    )


def load_checkpointed_pipeline(checkpoint: Checkpoint, config: Config) -> Language:
    """The checkpoint's pipeline, its [training] settings that a resume may change taken
    from config (those RESUMABLE_SETTINGS under [training]).

    checkpoint (Checkpoint): the checkpoint.
    config (Config): the resumed run's config (not interpolated).
    RETURNS (Language): the pipeline.
    """
    nlp = util.load_model(checkpoint.model_path)
    training = nlp.config["training"]
    for setting in RESUMABLE_SETTINGS:
        section, _, name = setting.partition(".")
        if section == "training" and name in config["training"]:
            training[name] = config["training"][name]
    return nlp


def train_initialized(
    nlp: Language,
    output_path: Optional[Path] = None,
    *,
    use_gpu: int = -1,
    stdout: IO = sys.stdout,
    stderr: IO = sys.stderr,
    checkpoint_cadence: Optional[CheckpointCadence] = None,
    resume_from: Optional[Checkpoint] = None,
    run_config: Optional[Config] = None,
) -> Tuple[Language, Optional[Path]]:
    """Train an initialized pipeline: spacy.training.loop.train (spaCy 3.8), step for
    step, but model-last is written with save_pipeline_atomically and model-best with
    copy_directory_atomically (spaCy: to_disk in place, and rmtree + copytree), and
    checkpoints are written at checkpoint_cadence.

    nlp (Language): the initialized pipeline, with its full config (resuming: the
        checkpoint's pipeline, load_checkpointed_pipeline).
    output_path (Optional[Path]): the output directory (None: nothing saved).
    use_gpu (int): the GPU's id, or -1 (set it up before: setup_gpu).
    stdout (IO), stderr (IO): where the loop and its logger write.
    checkpoint_cadence (Optional[CheckpointCadence]): when to write OUTPUT/checkpoint
        (None: never).
    resume_from (Optional[Checkpoint]): the checkpoint to go on from.
    run_config (Optional[Config]): the config the run was started with, which a resume
        must match (by default nlp.config).
    RETURNS (Tuple[Language, Optional[Path]]): the trained pipeline and model-last's path.
    """
    printer = Printer(no_print=True)
    config = nlp.config.interpolate()
    seed = config["training"]["seed"]
    if seed is not None:
        fix_random_seed(seed)
    allocator = config["training"]["gpu_allocator"]
    if use_gpu >= 0 and allocator:
        set_gpu_allocator(allocator)
    T = util.registry.resolve(config["training"], schema=ConfigSchemaTraining)
    train_corpus, dev_corpus = util.resolve_dot_names(config, [T["train_corpus"], T["dev_corpus"]])
    optimizer = T["optimizer"]
    before_to_disk = create_before_to_disk_callback(T["before_to_disk"])
    frozen_components = T["frozen_components"]
    annotating_components = T["annotating_components"]
    cadence = checkpoint_cadence or CheckpointCadence()
    checkpointing = output_path is not None and cadence.enabled
    stream = TrainBatchStream(nlp, train_corpus, T["batcher"], T["max_epochs"])
    progress = TrainingProgress()
    if resume_from is not None:
        progress = resume_from.progress
        stream.resume_at(progress.epoch, progress.batches_in_epoch, resume_from.epoch_start)
        restore_optimizer(optimizer, nlp, resume_from)
    checkpointed_step = progress.step if resume_from is not None else -1

    def save_pipeline(is_best: bool) -> None:
        assert output_path is not None  # called only when there is an output directory
        with nlp.use_params(optimizer.averages):
            save_pipeline_atomically(before_to_disk(nlp), output_path / DIR_MODEL_LAST)
        if is_best:
            copy_directory_atomically(output_path / DIR_MODEL_LAST, output_path / DIR_MODEL_BEST)

    def save_checkpoint(finished: bool = False) -> None:
        nonlocal checkpointed_step
        assert output_path is not None
        if progress.step == checkpointed_step and not finished:
            return
        write_checkpoint(
            output_path / DIR_CHECKPOINT,
            nlp,
            optimizer,
            progress,
            stream,
            run_config if run_config is not None else nlp.config,
            finished=finished,
        )
        checkpointed_step = progress.step
        cadence.start(progress.seconds)
        if use_gpu >= 0:
            reseed_cupy(seed or 0, progress.step)

    steps = train_steps(
        nlp,
        optimizer,
        iter(stream),
        create_evaluation_callback(nlp, dev_corpus, T["score_weights"]),
        progress,
        dropout=T["dropout"],
        accumulate_gradient=T["accumulate_gradient"],
        patience=T["patience"],
        max_steps=T["max_steps"],
        eval_frequency=T["eval_frequency"],
        exclude=frozen_components,
        annotating_components=annotating_components,
        before_update=T["before_update"],
    )
    if output_path is not None:
        for name in (DIR_MODEL_BEST, DIR_MODEL_LAST, DIR_CHECKPOINT):
            recover_interrupted_save(output_path / name)  # a killed run's temporary siblings
    if resume_from is None:
        clean_output_dir(output_path)
        if output_path is not None:
            remove_finished_checkpoint(output_path / DIR_CHECKPOINT)
    stdout.write(printer.info(f"Pipeline: {nlp.pipe_names}") + "\n")
    if frozen_components:
        stdout.write(printer.info(f"Frozen components: {frozen_components}") + "\n")
    if annotating_components:
        stdout.write(printer.info(f"Set annotations on update for: {annotating_components}") + "\n")
    stdout.write(printer.info(f"Initial learn rate: {optimizer.learn_rate}") + "\n")
    resuming = resumed_run(progress.step, progress.seconds) if resume_from else nullcontext()
    with nlp.select_pipes(disable=frozen_components), resuming:
        log_step, finalize_logger = T["logger"](nlp, stdout, stderr)
    stream.load()
    if resume_from is not None:
        # last: reading the corpus or setting up the logger must not draw from them
        restore_random_states(resume_from)
        if use_gpu >= 0:
            reseed_cupy(seed or 0, progress.step)
    cadence.start(progress.seconds)
    try:
        for info, is_best_checkpoint in steps:
            if is_best_checkpoint is not None:
                with nlp.select_pipes(disable=frozen_components):
                    update_meta(T, nlp, info)
                if output_path is not None:
                    save_pipeline(is_best_checkpoint)
                    info["output_path"] = str(output_path / DIR_MODEL_LAST)
            log_step(info if is_best_checkpoint is not None else None)
            if checkpointing and cadence.due(progress.step, progress.seconds):
                save_checkpoint()
    except SystemExit:
        # a clean stop between steps (spacy_lmcrf.stop_after_minutes.v1, a schedule's end)
        if checkpointing and progress.step:
            save_checkpoint(finished=True)
        raise
    except Exception as err:
        if output_path is not None:
            warning = f"Aborting and saving the final best model. Encountered exception: {err!r}"
            stdout.write(printer.warn(warning) + "\n")
        raise
    finally:
        # as spaCy's: model-last is saved however the loop ends, a SystemExit from a
        # callback (spacy_lmcrf.stop_after_minutes.v1) and Ctrl-C included
        finalize_logger()
        if output_path is not None:
            save_pipeline(False)
    if checkpointing and progress.step:
        save_checkpoint(finished=True)  # --resume with a larger max_steps goes on from here
    if optimizer.averages:
        nlp.use_params(optimizer.averages)
    if output_path is None:
        return nlp, None
    saved = output_path / DIR_MODEL_LAST
    stdout.write(printer.good("Saved pipeline to output directory", saved) + "\n")
    return nlp, saved


def train_steps(
    nlp: Language,
    optimizer: Optimizer,
    batches: Iterator[Tuple[int, int, Batch]],
    evaluate: Callable[[], Tuple[float, Any]],
    progress: TrainingProgress,
    *,
    dropout: float,
    eval_frequency: int,
    accumulate_gradient: int,
    patience: int,
    max_steps: int,
    exclude: List[str],
    annotating_components: List[str],
    before_update: Optional[Callable[[Language, Dict[str, Any]], None]],
) -> Iterator[Tuple[Dict[str, Any], Optional[bool]]]:
    """spacy.training.loop.train_while_improving (spaCy 3.8), with its counters kept in
    progress, so that a run can be checkpointed between two steps and go on from there.
    Yields (info, is_best_checkpoint) after each step, as spaCy's yields them (without the
    batch); by then progress counts the step (and the losses start again after an
    evaluation).

    batches (Iterator[Tuple[int, int, Batch]]): (epoch, index in the epoch, batch), from
        a TrainBatchStream.
    evaluate (Callable[[], Tuple[float, Any]]): the evaluation callback.
    progress (TrainingProgress): where training is; updated after each step.
    The other arguments are train_while_improving's.
    """
    start_time = timer() - progress.seconds
    while not training_done(progress, patience, max_steps):
        next_batch = next(batches, None)
        if next_batch is None:
            return
        epoch, index, batch = next_batch
        step = progress.step
        if before_update:
            before_update(nlp, {"step": step, "epoch": epoch})
        for subbatch in subdivide_batch(batch, accumulate_gradient):
            nlp.update(
                subbatch,
                drop=dropout,
                losses=progress.losses,
                sgd=False,  # type: ignore[arg-type]
                exclude=exclude,
                annotates=annotating_components,
            )
        for name, proc in nlp.pipeline:
            if (
                name not in exclude
                and getattr(proc, "is_trainable", False)
                and proc.model not in (True, False, None)  # type: ignore[attr-defined]
            ):
                proc.finish_update(optimizer)  # type: ignore[attr-defined]
        optimizer.step_schedules()
        if not (step % eval_frequency):
            if optimizer.averages:
                with nlp.use_params(optimizer.averages):
                    score, other_scores = evaluate()
            else:
                score, other_scores = evaluate()
            progress.results.append((score, step))
            is_best_checkpoint: Optional[bool] = score == max(progress.results)[0]
        else:
            score, other_scores = (None, None)
            is_best_checkpoint = None
        progress.words += sum(len(eg) for eg in batch)
        progress.step, progress.epoch, progress.batches_in_epoch = step + 1, epoch, index + 1
        progress.seconds = timer() - start_time
        info = {
            "epoch": epoch,
            "step": step,
            "score": score,
            "other_scores": other_scores,
            "losses": progress.losses,
            "checkpoints": progress.results,
            "seconds": int(progress.seconds),
            "words": progress.words,
        }
        if is_best_checkpoint is not None:
            progress.losses = {}
        yield info, is_best_checkpoint


def training_done(progress: TrainingProgress, patience: int, max_steps: int) -> bool:
    """spaCy's stopping rules, after progress.step completed steps: no better evaluation in
    `patience` steps (the earliest of equal scores counts), or max_steps reached."""
    if not progress.step:
        return False
    last_step = progress.step - 1
    best_step = -max((score, -step) for score, step in progress.results)[1]
    if patience and (last_step - best_step) >= patience:
        return True
    return bool(max_steps) and last_step >= max_steps
