"""``python -m autoheal`` runs the command line."""

import sys

from autoheal.cli import main

sys.exit(main())
