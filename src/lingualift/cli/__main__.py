"""``python -m lingualift.cli <verb> ...``: the same command as ``lingualift``."""

import sys

from lingualift.cli import main

sys.exit(main())
