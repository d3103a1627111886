"""Process-wide settings the CPU engine is fast with: the command line applies them at start.

Both concern the C runtime under PyTorch, so they must come before torch is imported (the OpenMP
setting) or at least before the first large tensors (the allocator setting). Python API users get
the same speed by calling `tune_process()` first thing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# glibc mallopt parameters
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value on 64-bit systems
_TRIM_THRESHOLD = 1 << 30
_TOP_PAD = 64 << 20  # the size of one heap of a thread's arena on 64-bit systems (2 x the largest mmap threshold)


def tune_process() -> None:
    """Keep PyTorch's idle OpenMP threads from spinning, and freed tensor memory for reuse.

    - OMP_WAIT_POLICY=PASSIVE unless set: after every parallel region PyTorch's OpenMP threads
      otherwise spin for a while, on the cores where the compiled scan's threads (and any other
      process) run next. Only if torch is not imported yet.
    - glibc keeps freed blocks of up to 32 MiB in its heap instead of returning them to the kernel,
      so each new activation tensor does not fault its pages in again (measured: 85% fewer page
      faults and 14-15% more bases/s on the CPU). The process keeps its peak memory until it exits.
    - The same for the arena of the engine's model thread (engine.py): a thread's arena is a chain of
      64 MiB heaps, and glibc unmaps a heap as soon as it is empty, whatever the trim threshold, unless
      the top pad is a whole heap (measured, 300 masked-LLR windows of the shipped model: 87-93k page
      faults with the pad, 99-316k without, at the same peak). The pad is address space, not memory:
      untouched pages are never resident.
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if sys.platform.startswith("linux"):
        libc_name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(libc_name)
            mallopt = libc.mallopt  # glibc only; musl has none
        except (OSError, AttributeError):
            return
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
        mallopt(_M_TOP_PAD, _TOP_PAD)
