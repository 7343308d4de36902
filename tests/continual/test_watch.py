"""Reading a log once or following it: when the one polling loop stops, and what it refuses."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from lingualift.continual.watch import WatchSettings, poll_repeatedly
from lingualift.errors import LingualiftError


def test_reads_once_unless_following():
    reads = []
    assert poll_repeatedly(lambda: reads.append(1)) is False and reads == [1]
    assert (
        poll_repeatedly(lambda: reads.append(2), follow=True, poll_seconds=0, max_polls=3) is False
    )
    assert reads == [1, 2, 2, 2]


def test_stop_ends_following_between_two_reads():
    stop = threading.Event()
    reads = []

    def read():
        stop.set()  # set during a read (as SIGTERM does): that read finishes, no other starts
        reads.append("finished")

    began = time.monotonic()
    assert poll_repeatedly(read, follow=True, poll_seconds=30, stop=stop) is True
    assert reads == ["finished"] and time.monotonic() - began < 10  # no 30 s wait


def test_ctrl_c_while_waiting_is_a_clean_stop():
    def ctrl_c(seconds):
        raise KeyboardInterrupt

    reads = []
    waiting = SimpleNamespace(wait=ctrl_c)
    assert poll_repeatedly(lambda: reads.append(1), follow=True, stop=waiting) is True
    assert reads == [1]


def test_settings_refuse_bad_values_in_one_sentence():
    with pytest.raises(LingualiftError, match="poll_seconds must not be negative"):
        WatchSettings(poll_seconds=-1)
    with pytest.raises(LingualiftError, match="max_polls must be at least 1"):
        WatchSettings(max_polls=0)
    with pytest.raises(LingualiftError, match="metrics_port must be a port number"):
        WatchSettings(metrics_port=70000)
    with pytest.raises(LingualiftError, match="report_to must be auto, none or some of"):
        WatchSettings(report_to="neptune")
