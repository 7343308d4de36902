"""Job tests run tiny models on one thread (see the shared ``one_thread``)."""

import pytest


@pytest.fixture(autouse=True)
def jobs_on_one_thread(one_thread):
    """Every job test runs on one thread."""
