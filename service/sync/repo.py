"""The destination model repository (the EFS mount): atomic installs, retention, the lock.

Every change becomes visible in one ``os.rename`` on the same file system: content is built in
a hidden sibling (``.tmp-*``, which the service ignores), fsync'ed, then renamed into place.
Removal is the reverse: rename to a hidden ``.del-*`` first (the version disappears atomically),
then delete. Anything hidden left behind by a crash is removed by the next run, under the lock.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from service.sync.errors import DestinationError, LockedError

TMP_PREFIX = ".tmp-"
DEL_PREFIX = ".del-"
LOCK_FILE = ".sync.lock"
DIR_MODE = 0o755  # the service runs as another uid (10001): it must be able to read
FILE_MODE = 0o644


def visible_versions(model_dir: Path) -> list[int]:
    """Numeric version folders the service would see, ascending."""
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.name.isdigit() and p.is_dir())


def fsync_dir(path: Path) -> None:
    """Persist a directory's entries (a rename is durable only once its parent is synced)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Persist a file's data before it is renamed into view."""
    with path.open("rb+") as fh:
        fh.flush()
        os.fsync(fh.fileno())


def staging_dir(parent: Path, label: str) -> Path:
    """A new hidden, uniquely named folder next to where the content will land."""
    path = parent / f"{TMP_PREFIX}{label}-{secrets.token_hex(4)}"
    path.mkdir(mode=DIR_MODE)
    path.chmod(DIR_MODE)  # mkdir's mode is filtered by the umask
    return path


def seal(tree: Path) -> None:
    """Make a staged tree readable by the service and durable: chmod + fsync, leaves first."""
    for dirpath, dirnames, filenames in os.walk(tree, topdown=False):
        for name in filenames:
            path = Path(dirpath, name)
            path.chmod(FILE_MODE)
            fsync_file(path)
        for name in dirnames:
            Path(dirpath, name).chmod(DIR_MODE)
        fsync_dir(Path(dirpath))
    tree.chmod(DIR_MODE)


def reveal(staged: Path, final: Path) -> None:
    """Rename a staged folder into place; never replaces anything that is already there."""
    if final.exists():
        raise DestinationError(f"{final} appeared while it was being staged; not replacing it")
    os.rename(staged, final)
    fsync_dir(final.parent)


def replace_file(staged: Path, final: Path) -> None:
    """Atomically replace a single file (model-level files such as config.pbtxt)."""
    staged.chmod(FILE_MODE)
    fsync_file(staged)
    os.replace(staged, final)
    fsync_dir(final.parent)


def retire(path: Path) -> None:
    """Remove a folder: first out of the service's sight (rename), then from the disk."""
    hidden = path.parent / f"{DEL_PREFIX}{path.name}-{secrets.token_hex(4)}"
    os.rename(path, hidden)
    fsync_dir(path.parent)
    # Already invisible; if NFS refuses part of the delete, the next run's cleanup finishes it.
    shutil.rmtree(hidden, ignore_errors=True)


def discard(path: Path) -> None:
    """Best-effort removal of a hidden staging file or folder."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def leftovers(dest: Path) -> list[Path]:
    """Hidden staging/deletion entries from an interrupted run, at repository or model level."""
    found: list[Path] = []
    prefixes = (TMP_PREFIX, DEL_PREFIX)
    for entry in sorted(dest.iterdir()):
        if entry.name.startswith(prefixes):
            found.append(entry)
        elif not entry.name.startswith(".") and entry.is_dir():
            found.extend(p for p in sorted(entry.iterdir()) if p.name.startswith(prefixes))
    return found


def retention_victims(present: list[int], keep: int, published: list[int]) -> list[int]:
    """Versions to delete so that the newest ``keep`` remain.

    Never the served one (the highest present) and never one newer than a version published
    in this run, whatever ``keep`` says. ``keep <= 0`` keeps everything.
    """
    if keep <= 0 or not present:
        return []
    ordered = sorted(set(present), reverse=True)
    served = ordered[0]
    floor = max(published) if published else None
    return [v for v in ordered[keep:] if v != served and (floor is None or v < floor)]


@contextmanager
def repository_lock(dest: Path) -> Iterator[None]:
    """Exclusive advisory lock on the repository, so two publishers never interleave.

    flock on an EFS (NFSv4.1) mount is turned into an NFS lock by the Linux client, so this
    also excludes a publisher running in another task.
    """
    try:
        fd = os.open(dest / LOCK_FILE, os.O_RDWR | os.O_CREAT, FILE_MODE)
    except OSError as exc:
        raise DestinationError(f"cannot write to the model repository {dest}: {exc}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise LockedError(
                    f"another sync holds {dest / LOCK_FILE}; try again when it has finished"
                ) from exc
            raise
        yield
    finally:
        os.close(fd)
