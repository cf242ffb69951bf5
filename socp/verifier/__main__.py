"""`python -m socp.verifier DATA_DIR`: one verifier of the node in DATA_DIR."""

from __future__ import annotations

import sys

from .worker import main

sys.exit(main())
