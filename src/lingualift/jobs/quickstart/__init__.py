"""``lingualift quickstart``: the main job end to end, on the embedded assets only.

:func:`run_quickstart` (:mod:`~lingualift.jobs.quickstart.job`: the stages),
:class:`QuickstartConfig` (:mod:`~lingualift.jobs.quickstart.config`), and the
report it ends with (:mod:`~lingualift.jobs.quickstart.report`).
"""

from lingualift.jobs.quickstart.config import QuickstartConfig
from lingualift.jobs.quickstart.job import run_quickstart

__all__ = ["QuickstartConfig", "run_quickstart"]
