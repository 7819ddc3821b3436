"""The one way tars-bot reads a file a sandboxed process wrote: by name in a directory it
made, refusing symbolic links and special files, and never more than a cap."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tars_bot.errors import TarsError

_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a FIFO won't hang


class UnsafeOutput(TarsError):
    """A process left something tars-bot will not read where it expected a file."""


def read(directory: Path, name: str, limit: int) -> bytes | None:
    """The bytes of regular file `name` in `directory`; None when there is none. Raises
    UnsafeOutput for a link, a FIFO or device, or a file over `limit` bytes."""
    folder = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fd = os.open(name, _FLAGS, dir_fd=folder)
    except FileNotFoundError:
        return None
    except OSError as e:  # ELOOP: a symbolic link
        raise UnsafeOutput(f"{name}: not a regular file ({e.strerror})") from None
    finally:
        os.close(folder)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeOutput(f"{name}: not a regular file")
        chunks, size = [], 0
        while size <= limit and (chunk := os.read(fd, min(1 << 20, limit + 1 - size))):
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > limit:
        raise UnsafeOutput(f"{name}: over the {limit} bytes tars-bot reads back")
    return b"".join(chunks)
