"""API keys from their references: an environment variable or a file.

A key file is re-read when it changes (a rotated Kubernetes Secret is swapped
in place by kubelet), so keys rotate without a restart. The check is one
``stat`` per request. Keys are only ever returned, never logged.
"""

from __future__ import annotations

import logging
import os

from .config import EnvKeyRef, FileKeyRef, KeyRef

log = logging.getLogger(__name__)


class KeyResolver:
    def __init__(self) -> None:
        self._files: dict[str, tuple[tuple[int, int, int], str]] = {}
        self._warned: set[str] = set()

    def key(self, ref: KeyRef | None) -> str | None:
        """The current key, or ``None`` when there is none to send."""
        if ref is None:
            return None
        if isinstance(ref, EnvKeyRef):
            value = os.environ.get(ref.env)
            if not value:
                self._warn_once(f"env:{ref.env}", "API key variable %s is not set; calling without a key", ref.env)
            return value or None
        assert isinstance(ref, FileKeyRef)
        return self._from_file(ref.file)

    def _from_file(self, path: str) -> str | None:
        try:
            # stat follows the ..data symlink of a mounted Secret, so a swap changes the inode.
            info = os.stat(path)
        except OSError:
            self._warn_once(f"file:{path}", "API key file %s cannot be read; calling without a key", path)
            self._files.pop(path, None)
            return None
        stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
        cached = self._files.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1] or None
        try:
            with open(path, encoding="utf-8") as handle:
                value = handle.read().strip()
        except (OSError, UnicodeDecodeError):
            self._warn_once(f"file:{path}", "API key file %s cannot be read; calling without a key", path)
            return None
        self._files[path] = (stamp, value)
        self._warned.discard(f"file:{path}")
        return value or None

    def _warn_once(self, token: str, message: str, *args: object) -> None:
        if token not in self._warned:
            self._warned.add(token)
            log.warning(message, *args)
