"""CPU peak-memory measurement shared by evaluation, complexity and the benchmarks.

Linux keeps a resident-set high-water mark per process (VmHWM); writing 5 to
/proc/self/clear_refs resets it to the current RSS, so the peak of one step can be read
without a fresh process. Where the reset is not allowed, the lifetime peak is all there is.
"""
from __future__ import annotations

import re
import resource
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int | None:
    try:
        match = re.search(rf"^{field}:\s+(\d+)\s+kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def reset_peak_rss() -> bool:
    """Reset the RSS high-water mark to the current RSS; False where not permitted."""
    try:
        with open(_CLEAR_REFS, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def current_rss_kib() -> int | None:
    """Resident set size now (VmRSS), or None off Linux."""
    return _status_kib("VmRSS")


def peak_rss_kib() -> int:
    """RSS high-water mark since the last reset (VmHWM), else the process's lifetime ru_maxrss."""
    hwm = _status_kib("VmHWM")
    if hwm is not None:
        return hwm
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform.startswith("linux") else maxrss // 1024  # bytes on macOS
