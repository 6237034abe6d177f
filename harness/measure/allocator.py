"""The cell processes' malloc: the same allocator state in every cell, no page faults once warm.

Light on purpose (no torch): the runner imports it to build the cells' environment.
"""

from __future__ import annotations

#: glibc malloc settings of ``allocator: steady`` (the default), as environment variables read at
#: process start. With glibc's defaults, a freed buffer above the (dynamic) mmap threshold goes
#: back to the OS and the next forward pass faults its pages in again: thousands of page faults
#: per pass for the tiny model at batch 8, ~15% slower, and a level that depends on what the
#: process allocated and freed before (a technique that copied the model once ran faster than
#: the baseline that did not). A fixed mmap threshold (32 MiB, glibc's maximum) and a trim
#: threshold of 1 GiB keep the activations' buffers in the heap: no faults once warm, the same
#: allocator state in every cell. This is what PyTorch's CPU tuning guide gets from jemalloc or
#: tcmalloc, without a preloaded library.
STEADY_ALLOCATOR_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}
ALLOCATORS = ("steady", "system")


def allocator_env(allocator: str) -> dict[str, str]:
    """Environment variables for cell processes that select the suite's ``allocator``."""
    if allocator not in ALLOCATORS:
        raise ValueError(f"allocator {allocator!r}: expected one of {', '.join(ALLOCATORS)}")
    return dict(STEADY_ALLOCATOR_ENV) if allocator == "steady" else {}


def minor_faults() -> int:
    """Minor page faults of this process so far (0 where the platform does not count them)."""
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    except (ImportError, OSError):
        return 0
