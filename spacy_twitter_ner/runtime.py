"""Process-wide settings the component needs, applied when one is created (never at import),
and giving freed heap memory back to the OS."""
import ctypes
import ctypes.util
import functools
import os
import sys
import threading
from typing import Callable, Optional

import torch

# oneDNN (torch's CPU LSTM) keeps up to 1,024 compiled primitives, one per (batch, length) shape
# it has seen, each holding its scratch memory: up to ~40 MB over 30k tweets of ragged batches.
# 64 holds the shapes a stream of tweets keeps meeting (full batches differ only in their longest
# tweet); measured over 34k tweets: +1.9 MiB held against no cache, +6.6 MiB for the default 1,024,
# and ~4% faster than no cache. Set unless the user has set the variable; it is read when oneDNN
# first runs, so it takes effect where the component is created before any torch LSTM has run.
ONEDNN_CACHE = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "64")

_FORK_HOOK = False


def bound_onednn_cache() -> None:
    """``ONEDNN_PRIMITIVE_CACHE_CAPACITY=64`` unless already set (see ``ONEDNN_CACHE``)."""
    os.environ.setdefault(*ONEDNN_CACHE)


@functools.lru_cache(maxsize=1)
def _libc_malloc_trim() -> Optional[Callable[[int], int]]:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def trim_heap() -> bool:
    """Give freed heap memory back to the OS (glibc only; False where it cannot). Batches of
    ragged tensors leave the heap fragmented: free memory that stays resident until trimmed."""
    trim = _libc_malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def one_torch_thread_in_forked_children() -> None:
    """Workers forked by ``nlp.pipe(n_process=...)`` hang on their first torch operation when
    the parent's OpenMP pool was already started; one intra-op thread per worker avoids it and
    is what a process pool wants anyway. Idempotent."""
    global _FORK_HOOK
    if not _FORK_HOOK and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=lambda: torch.set_num_threads(1))
        _FORK_HOOK = True


class HeapTrimmer:
    """Counts the docs this process annotated (all threads, all pipes) and gives the free heap
    back each time ``every`` more were done: long streams and long-running services stay
    bounded, while a request of a few tweets never pays for a trim of its own."""

    def __init__(self, every: int) -> None:
        self.every = every
        self._count = 0
        self._lock = threading.Lock()

    def add(self, n_docs: int) -> bool:
        """Count ``n_docs``; True when this call trimmed the heap."""
        with self._lock:
            self._count += n_docs
            if self._count < self.every:
                return False
            self._count = 0
        return trim_heap()

    def trim(self) -> bool:
        """Trim now (the end of a long stream) and start counting again."""
        with self._lock:
            self._count = 0
        return trim_heap()
