"""`python -m raftkv ...` is the `raftkv` command (see raftkv.cli)."""

import sys

from raftkv.cli import main

sys.exit(main())
