"""`spacy lmcrf train`: `spacy train`, with model-best and model-last saved atomically.

spaCy's training loop (spacy.training.loop.train, 3.8) writes model-last in place with
nlp.to_disk and replaces model-best by rmtree + copytree: a process killed while either is
being written leaves it unloadable. Here the same loop runs, built from spaCy's own public
functions, and both directories are written by spacy_lmcrf.training.atomic_save: at every moment
each is the complete previous pipeline or the complete new one (see that module for the
exact guarantee). The output directory's layout, the meta.json performance, the logger's
output and the callbacks ([training.before_update], [training.before_to_disk],
[initialize.after_init]) are spaCy's.
"""

import sys
from pathlib import Path
from typing import IO, Any, Dict, Optional, Tuple, Union

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
    create_train_batches,
    train_while_improving,
    update_meta,
)
from thinc.api import fix_random_seed, set_gpu_allocator
from wasabi import Printer, msg

from .atomic_save import (
    copy_directory_atomically,
    recover_interrupted_save,
    save_pipeline_atomically,
)


def train_pipeline(
    config_path: Union[str, Path],
    output_path: Optional[Union[str, Path]] = None,
    *,
    overrides: Dict[str, Any] = util.SimpleFrozenDict(),
    use_gpu: int = -1,
    stdout: IO = sys.stdout,
    stderr: IO = sys.stderr,
) -> Tuple[Language, Optional[Path]]:
    """Initialize and train the pipeline of a config, as `spacy train` does (this mirrors
    spacy.cli.train.train), saving model-best and model-last atomically.

    config_path (Union[str, Path]): the training config.
    output_path (Optional[Union[str, Path]]): the output directory (None: nothing saved).
    overrides (Dict[str, Any]): config overrides, e.g. {"paths.train": "train.spacy"}.
    use_gpu (int): the GPU's id, or -1 for the CPU.
    stdout (IO), stderr (IO): where the training loop and its logger write.
    RETURNS (Tuple[Language, Optional[Path]]): the trained pipeline and model-last's path.
    """
    config_path = Path(config_path)
    output_path = Path(output_path) if output_path is not None else None
    if not config_path.exists():
        msg.fail("Config file not found", config_path, exits=1)
    if output_path is None:
        msg.info("No output directory provided")
    else:
        if not output_path.exists():
            output_path.mkdir(parents=True)
            msg.good(f"Created output directory: {output_path}")
        msg.info(f"Saving to output directory: {output_path}")
    setup_gpu(use_gpu)
    with show_validation_error(config_path):
        config = util.load_config(config_path, overrides=overrides, interpolate=False)
    msg.divider("Initializing pipeline")
    with show_validation_error(config_path, hint_fill=False):
        nlp = init_nlp(config, use_gpu=use_gpu)
    msg.good("Initialized pipeline")
    msg.divider("Training pipeline")
    return train_initialized(nlp, output_path, use_gpu=use_gpu, stdout=stdout, stderr=stderr)


def train_initialized(
    nlp: Language,
    output_path: Optional[Path] = None,
    *,
    use_gpu: int = -1,
    stdout: IO = sys.stdout,
    stderr: IO = sys.stderr,
) -> Tuple[Language, Optional[Path]]:
    """Train an initialized pipeline: spacy.training.loop.train (spaCy 3.8), step for
    step, but model-last is written with save_pipeline_atomically and model-best with
    copy_directory_atomically (spaCy: to_disk in place, and rmtree + copytree).

    nlp (Language): the initialized pipeline, with its full config.
    output_path (Optional[Path]): the output directory (None: nothing saved).
    use_gpu (int): the GPU's id, or -1 (set it up before: setup_gpu).
    stdout (IO), stderr (IO): where the loop and its logger write.
    RETURNS (Tuple[Language, Optional[Path]]): the trained pipeline and model-last's path.
    """
    printer = Printer(no_print=True)
    config = nlp.config.interpolate()
    if config["training"]["seed"] is not None:
        fix_random_seed(config["training"]["seed"])
    allocator = config["training"]["gpu_allocator"]
    if use_gpu >= 0 and allocator:
        set_gpu_allocator(allocator)
    T = util.registry.resolve(config["training"], schema=ConfigSchemaTraining)
    train_corpus, dev_corpus = util.resolve_dot_names(config, [T["train_corpus"], T["dev_corpus"]])
    optimizer = T["optimizer"]
    before_to_disk = create_before_to_disk_callback(T["before_to_disk"])
    frozen_components = T["frozen_components"]
    annotating_components = T["annotating_components"]

    def save_checkpoint(is_best: bool) -> None:
        assert output_path is not None  # called only when there is an output directory
        with nlp.use_params(optimizer.averages):
            save_pipeline_atomically(before_to_disk(nlp), output_path / DIR_MODEL_LAST)
        if is_best:
            copy_directory_atomically(output_path / DIR_MODEL_LAST, output_path / DIR_MODEL_BEST)

    steps = train_while_improving(
        nlp,
        optimizer,
        create_train_batches(nlp, train_corpus, T["batcher"], T["max_epochs"]),
        create_evaluation_callback(nlp, dev_corpus, T["score_weights"]),
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
        for name in (DIR_MODEL_BEST, DIR_MODEL_LAST):
            recover_interrupted_save(output_path / name)  # a killed run's temporary siblings
    clean_output_dir(output_path)
    stdout.write(printer.info(f"Pipeline: {nlp.pipe_names}") + "\n")
    if frozen_components:
        stdout.write(printer.info(f"Frozen components: {frozen_components}") + "\n")
    if annotating_components:
        stdout.write(printer.info(f"Set annotations on update for: {annotating_components}") + "\n")
    stdout.write(printer.info(f"Initial learn rate: {optimizer.learn_rate}") + "\n")
    with nlp.select_pipes(disable=frozen_components):
        log_step, finalize_logger = T["logger"](nlp, stdout, stderr)
    try:
        for _, info, is_best_checkpoint in steps:
            if is_best_checkpoint is not None:
                with nlp.select_pipes(disable=frozen_components):
                    update_meta(T, nlp, info)
                if output_path is not None:
                    save_checkpoint(is_best_checkpoint)
                    info["output_path"] = str(output_path / DIR_MODEL_LAST)
            log_step(info if is_best_checkpoint is not None else None)
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
            save_checkpoint(False)
    if optimizer.averages:
        nlp.use_params(optimizer.averages)
    if output_path is None:
        return nlp, None
    saved = output_path / DIR_MODEL_LAST
    stdout.write(printer.good("Saved pipeline to output directory", saved) + "\n")
    return nlp, saved
