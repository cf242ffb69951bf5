"""Size limits of the wire format, in one place so every layer agrees."""

from __future__ import annotations

MAX_FRAME_BYTES = 1024 * 1024          # one WebSocket text message
MAX_JSON_DEPTH = 16                    # nesting of objects/arrays in a frame
MAX_ID_CHARS = 128                     # peer ids: printable ASCII (ids.is_peer_id)
MAX_TYPE_CHARS = 64
MAX_KEY_CHARS = 4096                   # a base64url / PEM RSA-4096 public key
MAX_SIG_CHARS = 1024                   # base64url of a 512-byte signature is 683
MAX_TEXT_CHARS = 512 * 1024            # any other string (ciphertexts, wrapped keys)
MAX_NAME_CHARS = 255                   # file names, display names
MAX_LIST_ITEMS = 10_000
MAX_TS = 2**53                         # ms; JSON-safe integer bound
MAX_LOGIN_BLOB_CHARS = 16 * 1024       # privkey_store: an encrypted RSA-4096 key is ~3.3 K
MAX_LOGIN_VERIFIER_CHARS = 512         # pake_password

OAEP_BLOCK_BYTES = 512                 # SOCP §2: one RSA-4096 OAEP block
OAEP_MAX_PLAINTEXT = 446               # 512 - 2*32 - 2
RSA_BITS = 4096
RSA_EXPONENT = 65537
