"""Watching the config file for changes.

Works for a plain file edited in place or replaced, and for a mounted
ConfigMap, where kubelet writes a new timestamped directory and swaps the
``..data`` symlink: the file's path stays, what it resolves to changes. The
watcher polls the resolved path's identity (inode, size, mtime) - cheap, and
immune to the ways inotify misses symlink swaps. SIGHUP asks for a reload now.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path

from .active_config import ConfigHolder

log = logging.getLogger(__name__)


def file_identity(path: Path) -> tuple[str, int, int, int] | None:
    try:
        resolved = os.path.realpath(path)
        info = os.stat(resolved)
    except OSError:
        return None
    return resolved, info.st_ino, info.st_size, info.st_mtime_ns


async def watch_config(holder: ConfigHolder, path: Path, interval: float) -> None:
    """Reload ``path`` into ``holder`` whenever it changes; runs until cancelled."""
    wake = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGHUP, wake.set)
    seen = file_identity(path)
    try:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), interval)
            forced = wake.is_set()
            wake.clear()
            current = file_identity(path)
            if current is None:
                if seen is not None:
                    log.warning("config file %s is gone; still serving revision %s", path, holder.active.revision)
                seen = None
                continue
            if current != seen or forced:
                seen = current
                holder.reload_file(path)
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGHUP)
