"""Saving a pipeline directory so that a crash never leaves it half written.

`nlp.to_disk(path)` writes file after file into path: a process killed meanwhile leaves a
directory that spaCy cannot load (or, worse, one that mixes two pipelines). Here the
pipeline is written to a temporary sibling, `.NAME.tmp-PID` in the same directory (so the
same file system), flushed to disk, and only then swapped into place:

- on Linux (local file systems: ext4, xfs, btrfs, tmpfs, ...) by one
  renameat2(RENAME_EXCHANGE), which swaps the two directories atomically: at every moment
  `path` is the complete previous pipeline or the complete new one;
- elsewhere (or where the file system refuses the exchange) by two renames, as POSIX
  cannot rename a directory over a non-empty one: `path` -> `.NAME.old`, then the new one
  -> `path`. Between the two renames `path` is missing and `.NAME.old` is the complete
  previous pipeline. recover_interrupted_save(path) puts it back, and it runs before every
  save and before `spacy lmcrf train` starts; run it before loading a pipeline whose
  writer may have been killed (load_pipeline does).

After the swap, what is left (the previous pipeline, under the temporary or the .old name)
is deleted; a crash before that leaves a stale sibling that the next recovery removes.
One writer at a time per path: recovery removes every temporary sibling of path.
"""

import ctypes
import errno
import functools
import os
import shutil
import sys
from pathlib import Path
from typing import Callable, Iterable, Optional, Union

from spacy.language import Language
from spacy.util import SimpleFrozenList

TMP_INFIX = ".tmp-"
OLD_SUFFIX = ".old"
# renameat2(2): AT_FDCWD resolves relative paths from the working directory;
# RENAME_EXCHANGE swaps the two names atomically.
AT_FDCWD = -100
RENAME_EXCHANGE = 2


def save_pipeline_atomically(
    nlp: Language, path: Union[str, Path], *, exclude: Iterable[str] = SimpleFrozenList()
) -> Path:
    """Save nlp to path so that path is always a complete pipeline, old or new (see the
    module's docstring for the exact guarantee).

    nlp (Language): the pipeline to save.
    path (Union[str, Path]): the pipeline's directory; its parent is created if needed.
    exclude (Iterable[str]): names of components or serialization fields to leave out,
        as in nlp.to_disk.
    RETURNS (Path): path.
    """
    return replace_directory_atomically(path, lambda tmp: nlp.to_disk(tmp, exclude=exclude))


def copy_directory_atomically(source: Union[str, Path], path: Union[str, Path]) -> Path:
    """Copy the directory source to path with the guarantee of save_pipeline_atomically
    (spaCy's training loop copies model-last to model-best this way).

    source (Union[str, Path]): the directory to copy.
    path (Union[str, Path]): where the copy goes; what was there is replaced.
    RETURNS (Path): path.
    """
    return replace_directory_atomically(path, lambda tmp: shutil.copytree(source, tmp))


def replace_directory_atomically(path: Union[str, Path], write: Callable[[Path], object]) -> Path:
    """Replace the directory at path by what write puts in a fresh directory, atomically.

    path (Union[str, Path]): the directory to (re)place.
    write (Callable[[Path], object]): fills the directory it is given (which does not exist
        yet: write creates it, as nlp.to_disk and shutil.copytree do); what it returns is
        ignored.
    RETURNS (Path): path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_interrupted_save(path)
    tmp = path.with_name(f".{path.name}{TMP_INFIX}{os.getpid()}")
    try:
        write(tmp)
        fsync_tree(tmp)
        swap_into_place(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def swap_into_place(new: Path, path: Path) -> None:
    """Put the complete directory new at path; the previous path (if any) is deleted.

    new (Path): a complete directory beside path.
    path (Path): where it goes.
    """
    parent = path.parent
    if not path.exists():
        os.rename(new, path)
        fsync_directory(parent)
    elif exchange_directories(new, path):
        fsync_directory(parent)
        shutil.rmtree(new)  # the previous directory, now under the temporary name
    else:
        old = old_sibling(path)
        os.rename(path, old)
        # A crash here leaves no `path`: recover_interrupted_save restores `old`.
        os.rename(new, path)
        fsync_directory(parent)
        shutil.rmtree(old)


def recover_interrupted_save(path: Union[str, Path]) -> None:
    """Undo what a save killed midway left beside path: if path is missing and its .old
    sibling exists (killed between the two renames), rename .old back to path; remove a
    stale .old (path exists: the save completed) and every temporary sibling (a write that
    never completed, or a previous directory not yet deleted).

    path (Union[str, Path]): the directory saved by save_pipeline_atomically.
    """
    path = Path(path)
    old = old_sibling(path)
    if old.exists():
        if path.exists():
            shutil.rmtree(old)
        else:
            os.rename(old, path)
            fsync_directory(path.parent)
    if path.parent.is_dir():
        for tmp in path.parent.glob(f".{path.name}{TMP_INFIX}*"):
            shutil.rmtree(tmp, ignore_errors=True)


def load_pipeline(path: Union[str, Path], **kwargs) -> Language:
    """spacy.load(path, **kwargs) after recover_interrupted_save(path).

    path (Union[str, Path]): a directory written by save_pipeline_atomically.
    RETURNS (Language): the loaded pipeline.
    """
    import spacy

    recover_interrupted_save(path)
    return spacy.load(path, **kwargs)


def old_sibling(path: Path) -> Path:
    """Where the two-rename swap keeps the previous directory: `.NAME.old`."""
    return path.with_name(f".{path.name}{OLD_SUFFIX}")


def exchange_directories(a: Path, b: Path) -> bool:
    """Swap the names a and b in one atomic step (Linux renameat2 with RENAME_EXCHANGE).

    RETURNS (bool): False, having changed nothing, where the system or the file system
        cannot exchange; True once swapped. Other failures raise OSError.
    """
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


@functools.lru_cache(maxsize=1)
def _renameat2() -> Optional[Callable[..., int]]:
    """libc's renameat2 (glibc >= 2.28, Linux >= 3.15), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None
    function.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    function.restype = ctypes.c_int
    return function


def fsync_tree(root: Path) -> None:
    """Flush every file under root, then every directory (deepest first), to disk, so
    that the swap never publishes a directory whose files are still only in the page
    cache. Where the system cannot (directories on Windows), this is skipped.

    root (Path): the directory to flush.
    """
    for directory, _, files in os.walk(root, topdown=False):
        for name in files:
            _fsync_path(os.path.join(directory, name), os.O_RDONLY)
        fsync_directory(Path(directory))


def fsync_directory(path: Path) -> None:
    """Flush a directory's entries (the renames in it) to disk, where the system can."""
    if hasattr(os, "O_DIRECTORY"):
        _fsync_path(str(path), os.O_RDONLY | os.O_DIRECTORY)


def _fsync_path(path: str, flags: int) -> None:
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
