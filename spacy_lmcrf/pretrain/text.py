"""Raw text for language-model pretraining, streamed line by line from files or directories.

Files ending in .gz are decompressed on the fly. Text must be UTF-8: a file that is not
raises an error naming the file and line, rather than being skipped.
"""

import gzip
from pathlib import Path
from typing import Iterable, Iterator, List, Sequence, Tuple, Union

from ..ml.modules.word_vocab import line_tokens

PathLike = Union[str, Path]


def text_files(paths: Union[PathLike, Sequence[PathLike]]) -> List[Path]:
    """The files named by paths: each a file, or a directory read recursively (sorted,
    hidden files skipped). Several paths may be given as a list or a comma-separated string."""
    if isinstance(paths, (str, Path)):
        paths = [p for p in str(paths).split(",") if p.strip()]
    files: List[Path] = []
    for entry in paths:
        path = Path(str(entry).strip())
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                raise ValueError(f"directory {path} holds no text files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"no such text file or directory: {path}")
    if not files:
        raise ValueError("no text files given")
    return files


def read_lines(files: Iterable[Path]) -> Iterator[str]:
    """Every line of every file, in order, each ending with "\\n" (added to a last line without
    one)."""
    for path in files:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as file_:
            for number, raw in enumerate(file_, start=1):
                try:
                    line = raw.decode("utf8")
                except UnicodeDecodeError as err:
                    raise ValueError(f"{path}, line {number}: not UTF-8 ({err})") from None
                yield line if line.endswith("\n") else line + "\n"


def read_chunks(files: Iterable[Path], n_chars: int) -> Iterator[str]:
    """The text of files in consecutive pieces of n_chars characters (the last may be
    shorter): every character exactly once, never more than about n_chars in memory."""
    if n_chars < 1:
        raise ValueError(f"n_chars must be positive, got {n_chars}")
    buffer: List[str] = []
    size = 0
    for line in read_lines(files):
        buffer.append(line)
        size += len(line)
        while size >= n_chars:
            text = "".join(buffer)
            yield text[:n_chars]
            rest = text[n_chars:]
            buffer, size = ([rest], len(rest)) if rest else ([], 0)
    if size:
        yield "".join(buffer)


def hold_out_last_lines(
    source: PathLike, train_path: PathLike, dev_path: PathLike, n_lines: int
) -> Tuple[int, int]:
    """Copy source's lines to train_path, except the last n_lines, which go to dev_path
    (held-out text for a corpus that comes as one file). Returns the two line counts."""
    files = text_files(source)
    total = sum(1 for _ in read_lines(files))
    if not 0 < n_lines < total:
        raise ValueError(f"{source} has {total} lines: cannot hold out {n_lines} of them")
    for path in (train_path, dev_path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    with (
        open(train_path, "w", encoding="utf8") as train,
        open(dev_path, "w", encoding="utf8") as dev,
    ):
        for i, line in enumerate(read_lines(files)):
            (train if i < total - n_lines else dev).write(line)
    return total - n_lines, n_lines


def read_token_chunks(files: Iterable[Path], n_tokens: int) -> Iterator[List[str]]:
    """The tokens of files in consecutive pieces of n_tokens (the last may be shorter):
    every token exactly once, never more than about n_tokens in memory."""
    if n_tokens < 1:
        raise ValueError(f"n_tokens must be positive, got {n_tokens}")
    buffer: List[str] = []
    for line in read_lines(files):
        buffer.extend(line_tokens(line))
        while len(buffer) >= n_tokens:
            yield buffer[:n_tokens]
            buffer = buffer[n_tokens:]
    if buffer:
        yield buffer
