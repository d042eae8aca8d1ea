"""Process-wide torch settings the component needs, applied when one is created (never at
import)."""
import os

import torch

_FORK_HOOK = False


def one_torch_thread_in_forked_children() -> None:
    """Workers forked by ``nlp.pipe(n_process=...)`` hang on their first torch operation when
    the parent's OpenMP pool was already started; one intra-op thread per worker avoids it and
    is what a process pool wants anyway. Idempotent."""
    global _FORK_HOOK
    if not _FORK_HOOK and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=lambda: torch.set_num_threads(1))
        _FORK_HOOK = True
