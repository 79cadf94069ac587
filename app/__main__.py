"""``python -m app`` runs the ``tempeh`` command line."""

import sys

from app.cli import main

sys.exit(main())
