"""`python -m socp.store DATA_DIR`: run the store actor of the node in DATA_DIR (its node.json)."""

from __future__ import annotations

import sys
from pathlib import Path

from socp.config import NodeConfig
from socp.store import run


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python -m socp.store DATA_DIR")
    run(NodeConfig.load(Path(argv[0])))


if __name__ == "__main__":
    main(sys.argv[1:])
