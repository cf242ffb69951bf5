from __future__ import annotations

import subprocess
import sys


def test_protocol_core_imports_no_io_libraries() -> None:
    code = (
        "import sys, socp.protocol, socp.protocol.signing, socp.protocol.frames, socp.protocol.keystore;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'asyncio','websockets','zmq','aiosqlite','aiomysql','uvloop','sqlite3'});"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
