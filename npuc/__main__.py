"""``python -m npuc`` runs the ``npuc`` command."""

import sys

from npuc.compiler.cli import main

sys.exit(main())
