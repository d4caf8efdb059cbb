"""``bound_heap`` applies glibc's settings where glibc is the C library."""
from __future__ import annotations

import platform

import pytest

from bnnlogic.heap import bound_heap


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_bound_heap_applies_on_glibc():
    assert bound_heap() is True
