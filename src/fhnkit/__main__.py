"""`python -m fhnkit ...` is the `fhnkit` command."""

import sys

from .cli import main

sys.exit(main())
