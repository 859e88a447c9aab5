"""Pretraining the forward and backward character LMs on raw text, with truncated
backpropagation through time (Akbik et al. 2018, section 3.2).

Why not `spacy pretrain`: its objectives see batches of Docs and are stepped by spaCy's
loop, which has no held-out evaluation, carries no recurrent state from one batch to
the next (truncated BPTT needs it), and saves only a tok2vec layer's bytes. So this is
a command of its own (`spacy lmcrf pretrain-char-lm`), configured through spaCy's
config system, whose result is one file that spacy_lmcrf.ContextualStringEmbeddings.v1
reads at initialization.

The text is streamed: it is read in splits of batch_size x (bptt x split_windows + 1)
characters; each split is cut into batch_size contiguous rows that are read window by
window (bptt characters), the LSTM states carried from one window to the next and reset
at each split. The backward LM reads each split reversed. Every character of the text is
trained on in every epoch.
"""
import math
import random
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import numpy
import torch
from spacy.util import load_config
from thinc.api import Config
from tqdm import tqdm
from wasabi import msg

from .char_lm import BiCharLM, CharLM, State
from .char_vocab import CharVocab
from .loop import RunClock, StopRule, append_log
from .settings import read_section
from .tensor_file import read_tensor_file, write_tensor_file
from .text import read_chunks, text_files

MODEL_DEFAULTS = {"embedding_size": 100, "hidden_size": 2048, "num_layers": 1, "dropout": 0.25}
CORPUS_DEFAULTS = {"train": None, "dev": None, "char_coverage": 0.999999, "dev_max_chars": 0}
TRAINING_DEFAULTS = {
    "bptt": 250,
    "batch_size": 100,
    "learn_rate": 20.0,
    "grad_clip": 0.25,
    "split_windows": 10,
    "eval_every": 1000,
    "max_steps": 0,
    "max_epochs": 0,
    "max_minutes": 0,
    "patience": 0,
}
# settings a resumed run may change (how long to go on); the others must match the checkpoint
RESUMABLE_CHANGES = ("eval_every", "max_steps", "max_epochs", "max_minutes", "patience")

CHECKPOINT = "checkpoint.msgpack"
BEST = "char_lm.msgpack"
LAST = "char_lm-last.msgpack"
LOG = "log.jsonl"
LN2 = math.log(2)


def read_settings(config: Config, source: str = "config") -> Dict[str, Dict[str, Any]]:
    settings = {
        "model": read_section(config, "model", MODEL_DEFAULTS, source),
        "corpus": read_section(config, "corpus", CORPUS_DEFAULTS, source),
        "training": read_section(config, "training", TRAINING_DEFAULTS, source),
        "seed": int((config.get("system") or {}).get("seed", 0) or 0),
    }
    if not settings["corpus"]["train"]:
        raise ValueError(f"{source}: [corpus] train is not set: give the training text (--paths.train PATH)")
    training = settings["training"]
    for key in ("bptt", "batch_size", "split_windows", "eval_every"):
        if training[key] < 1:
            raise ValueError(f"{source}: [training] {key} must be positive, got {training[key]}")
    return settings


def text_splits(files: List[Path], batch_size: int, bptt: int, split_windows: int) -> Iterator[str]:
    return read_chunks(files, batch_size * (bptt * split_windows + 1))


def rows_of(ids: numpy.ndarray, batch_size: int) -> List[numpy.ndarray]:
    """A split's ids as (rows, n) arrays of contiguous text: batch_size rows (fewer for a
    short split), plus one row for what is left over, so no character is left out."""
    n_rows = max(1, min(batch_size, len(ids) // 2))
    n = len(ids) // n_rows
    blocks = [ids[: n_rows * n].reshape(n_rows, n)]
    if len(ids) - n_rows * n >= 2:
        blocks.append(ids[n_rows * n :].reshape(1, -1))
    return blocks


def windows(n: int, bptt: int) -> List[Tuple[int, int]]:
    """(start, end) of the input windows of a row of n characters (targets one step on)."""
    return [(start, min(start + bptt, n - 1)) for start in range(0, n - 1, bptt)]


def detach(state: Optional[State]) -> Optional[State]:
    return None if state is None else (state[0].detach(), state[1].detach())


def lm_loss(lm: CharLM, rows: torch.Tensor, start: int, end: int, state: Optional[State]):
    """Summed cross-entropy (nats) of predicting rows[:, start+1:end+1] from rows[:, start:end]."""
    outputs, state = lm(rows[:, start:end], state)
    logits = lm.logits(outputs)
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), rows[:, start + 1 : end + 1].reshape(-1), reduction="sum"
    )
    return loss, state


@torch.no_grad()
def evaluate_bpc(model: BiCharLM, files: List[Path], settings: Dict[str, Any], device: torch.device) -> Dict[str, float]:
    """Bits per character of each LM on held-out text (at most dev_max_chars of it)."""
    training, corpus = settings["training"], settings["corpus"]
    was_training = model.training
    model.eval()
    totals = {"forward": 0.0, "backward": 0.0}
    n_chars = 0
    budget = corpus["dev_max_chars"] or math.inf
    for text in text_splits(files, training["batch_size"], training["bptt"], training["split_windows"]):
        if n_chars >= budget:
            break
        text = text[: int(min(len(text), budget - n_chars))]
        ids = model.vocab.encode(text)
        for direction, lm, seq in (("forward", model.forward_lm, ids), ("backward", model.backward_lm, ids[::-1].copy())):
            for block in rows_of(seq, training["batch_size"]):
                rows = torch.from_numpy(block).to(device)
                state = None
                for start, end in windows(rows.shape[1], training["bptt"]):
                    loss, state = lm_loss(lm, rows, start, end, state)
                    totals[direction] += float(loss)
        n_chars += sum(block.shape[0] * (block.shape[1] - 1) for block in rows_of(ids, training["batch_size"]))
    model.train(was_training)
    if n_chars == 0:
        raise ValueError("the held-out text is empty")
    bpc = {direction: total / n_chars / LN2 for direction, total in totals.items()}
    return {"dev_bpc_forward": bpc["forward"], "dev_bpc_backward": bpc["backward"],
            "dev_bpc": (bpc["forward"] + bpc["backward"]) / 2, "dev_chars": n_chars}


def _config_fingerprint(settings: Dict[str, Any]) -> Dict[str, Any]:
    training = {k: v for k, v in settings["training"].items() if k not in RESUMABLE_CHANGES}
    corpus = {k: v for k, v in settings["corpus"].items() if k != "dev"}
    return {"model": settings["model"], "corpus": {k: str(v) for k, v in corpus.items()},
            "training": training, "seed": settings["seed"]}


def _rng_tensors() -> Dict[str, torch.Tensor]:
    return {"rng.torch": torch.get_rng_state()}


def pretrain_char_lm(
    config: Union[Config, Dict[str, Any]],
    output_dir: Union[str, Path],
    *,
    resume: bool = False,
    gpu_id: int = -1,
    show_progress: bool = True,
) -> Dict[str, Any]:
    """Train (or, with resume, go on training) the forward and backward character LMs
    of config in output_dir: char_lm.msgpack (best dev bits per character, or the last
    model without dev text), char_lm-last.msgpack, checkpoint.msgpack (everything a
    resume needs) and log.jsonl. Returns the final record of the log."""
    settings = read_settings(config)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(f"cuda:{gpu_id}" if gpu_id >= 0 else "cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--gpu-id {gpu_id}: torch sees no CUDA device")
    train_files = text_files(settings["corpus"]["train"])
    dev_files = text_files(settings["corpus"]["dev"]) if settings["corpus"]["dev"] else None
    training = settings["training"]
    checkpoint_path = output_dir / CHECKPOINT

    if resume:
        if not checkpoint_path.exists():
            raise FileNotFoundError(f"--resume: there is no checkpoint at {checkpoint_path}")
        tensors, meta = read_tensor_file(checkpoint_path)
        if meta["fingerprint"] != _config_fingerprint(settings):
            raise ValueError(
                f"--resume: the config differs from the checkpoint's in more than "
                f"{', '.join(RESUMABLE_CHANGES)}; start a new output directory instead"
            )
        model = BiCharLM.from_meta(meta["model"], str(checkpoint_path))
        model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        torch.set_rng_state(tensors["rng.torch"])
        position = meta["position"]
        states = {
            d: (tensors[f"state.{d}.h"].to(device), tensors[f"state.{d}.c"].to(device))
            if f"state.{d}.h" in tensors else None
            for d in ("forward", "backward")
        }
        progress = meta["progress"]
        msg.info(f"Resuming at step {progress['step']} (epoch {position['epoch']}, split {position['split']})")
    else:
        if checkpoint_path.exists():
            raise FileExistsError(
                f"{output_dir} already holds a run ({CHECKPOINT}): use --resume to go on, "
                "or another output directory"
            )
        random.seed(settings["seed"])
        numpy.random.seed(settings["seed"])
        torch.manual_seed(settings["seed"])
        msg.info(f"Counting the characters of {len(train_files)} file(s)")
        vocab = CharVocab.from_files(train_files, settings["corpus"]["char_coverage"])
        model = BiCharLM(vocab, **settings["model"])
        position = {"epoch": 0, "split": 0, "window": 0, "block": 0}
        states = {"forward": None, "backward": None}
        progress = {"step": 0, "seconds": 0.0, "train_chars": 0, "best_dev_bpc": None,
                    "evals_since_best": 0}
        msg.info(f"{len(vocab)} characters (unknown symbol included); LSTM {model.hidden_size} x "
                 f"{settings['model']['num_layers']}; {sum(p.numel() for p in model.parameters()):,} parameters")
    model.to(device)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=training["learn_rate"])
    stop_rule = StopRule(training["max_steps"], training["max_epochs"], training["max_minutes"], training["patience"])
    clock = RunClock(progress["seconds"])
    log_path = output_dir / LOG
    running = {"forward": 0.0, "backward": 0.0, "chars": 0}

    def provenance() -> Dict[str, Any]:
        return {"step": progress["step"], "epoch": position["epoch"], "seconds": round(clock.seconds, 1),
                "train_chars": progress["train_chars"], "train_files": [str(f) for f in train_files]}

    def save_checkpoint() -> None:
        tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
        tensors.update(_rng_tensors())
        for direction, state in states.items():
            if state is not None:
                tensors[f"state.{direction}.h"], tensors[f"state.{direction}.c"] = state
        progress["seconds"] = clock.seconds
        meta = {"fingerprint": _config_fingerprint(settings), "model": model.meta(), "position": position,
                "progress": progress}
        write_tensor_file(checkpoint_path, tensors, meta)

    def evaluate() -> Dict[str, Any]:
        record: Dict[str, Any] = {"event": "evaluate", **provenance()}
        if running["chars"]:
            record["train_bpc_forward"] = running["forward"] / running["chars"] / LN2
            record["train_bpc_backward"] = running["backward"] / running["chars"] / LN2
        running.update(forward=0.0, backward=0.0, chars=0)
        if dev_files is not None:
            record.update(evaluate_bpc(model, dev_files, settings, device))
            best = progress["best_dev_bpc"]
            if best is None or record["dev_bpc"] < best:
                progress["best_dev_bpc"] = record["dev_bpc"]
                progress["evals_since_best"] = 0
                model.save(output_dir / BEST, **provenance(), dev_bpc=record["dev_bpc"])
            else:
                progress["evals_since_best"] += 1
        else:
            model.save(output_dir / BEST, **provenance())
        model.save(output_dir / LAST, **provenance())
        append_log(log_path, record)
        save_checkpoint()
        return record

    bar = tqdm(total=training["max_steps"] or None, initial=progress["step"], disable=not show_progress,
               unit="step", dynamic_ncols=True)
    last_record: Dict[str, Any] = {}
    stop = stop_rule.reason(step=progress["step"], epoch=position["epoch"], seconds=clock.seconds,
                            evals_since_best=progress["evals_since_best"])
    while stop is None:
        splits = text_splits(train_files, training["batch_size"], training["bptt"], training["split_windows"])
        for split_index, text in enumerate(splits):
            if split_index < position["split"]:
                continue
            ids = model.vocab.encode(text)
            blocks = {"forward": rows_of(ids, training["batch_size"]),
                      "backward": rows_of(ids[::-1].copy(), training["batch_size"])}
            for block_index in range(len(blocks["forward"])):
                if block_index < position["block"]:
                    continue
                rows = {d: torch.from_numpy(blocks[d][block_index]).to(device) for d in blocks}
                spans = windows(rows["forward"].shape[1], training["bptt"])
                for window_index, (start, end) in enumerate(spans):
                    if window_index < position["window"]:
                        continue
                    optimizer.zero_grad()
                    n_chars = rows["forward"].shape[0] * (end - start)
                    for direction, lm in (("forward", model.forward_lm), ("backward", model.backward_lm)):
                        loss, state = lm_loss(lm, rows[direction], start, end, states[direction])
                        (loss / n_chars).backward()
                        states[direction] = detach(state)
                        running[direction] += float(loss.detach())
                        torch.nn.utils.clip_grad_norm_(lm.parameters(), training["grad_clip"])
                    optimizer.step()
                    running["chars"] += n_chars
                    progress["train_chars"] += n_chars
                    progress["step"] += 1
                    position["window"] = window_index + 1
                    bar.update(1)
                    if running["chars"]:
                        bar.set_postfix(
                            bpc=f"{(running['forward'] + running['backward']) / 2 / running['chars'] / LN2:.3f}",
                            chars_per_s=f"{progress['train_chars'] / max(clock.seconds, 1e-9):,.0f}",
                            refresh=False,
                        )
                    if progress["step"] % training["eval_every"] == 0:
                        last_record = evaluate()
                        bar.write(_describe(last_record))
                    stop = stop_rule.reason(step=progress["step"], epoch=position["epoch"], seconds=clock.seconds,
                                            evals_since_best=progress["evals_since_best"])
                    if stop is not None:
                        break
                if stop is not None:
                    break
                position.update(block=block_index + 1, window=0)
                states = {"forward": None, "backward": None}
            if stop is not None:
                break
            position.update(split=split_index + 1, block=0, window=0)
        else:
            position.update(epoch=position["epoch"] + 1, split=0, block=0, window=0)
            if progress["step"] == 0:
                raise ValueError("the training text has fewer than 2 characters: nothing to train on")
            stop = stop_rule.reason(step=progress["step"], epoch=position["epoch"], seconds=clock.seconds,
                                    evals_since_best=progress["evals_since_best"])
    bar.close()
    if not last_record or last_record["step"] != progress["step"]:
        last_record = evaluate()
        msg.info(_describe(last_record))
    end = {"event": "end", "reason": stop, **provenance(), "best_dev_bpc": progress["best_dev_bpc"]}
    append_log(log_path, end)
    msg.good(f"Stopped by {stop}; saved {output_dir / BEST}")
    return {**last_record, **end}


def _describe(record: Dict[str, Any]) -> str:
    parts = [f"step {record['step']}", f"epoch {record['epoch']}", f"{record['seconds']:.0f}s"]
    if "train_bpc_forward" in record:
        parts.append(f"train bpc {record['train_bpc_forward']:.3f}/{record['train_bpc_backward']:.3f}")
    if "dev_bpc" in record:
        parts.append(f"dev bpc {record['dev_bpc_forward']:.3f}/{record['dev_bpc_backward']:.3f} (fwd/bwd)")
    return ", ".join(parts)


def load_pretraining_config(path: Union[str, Path], overrides: Optional[Dict[str, Any]] = None) -> Config:
    return load_config(path, overrides=overrides or {}, interpolate=True)
