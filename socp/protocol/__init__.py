"""The SOCP v1.3 wire format and its cryptography: pure, no I/O libraries.

Modules, in dependency order:
  errors         the exception tree and ErrorCode
  limits         size limits shared by every layer
  ids            UserId / ServerId / FileId and UUID v4 checks
  encoding       base64url and canonical JSON (§2, §5)
  crypto         RSA-4096 keys, OAEP, PSS (§2)
  frame_types    the closed set of frame types and who may send them
  envelope       Envelope, parse(), per-type payload validation (§5–§7)
  frames         one builder per frame type
  signing        transport and content signatures, every accepted variant (§5, §9)
  key_forms      public keys in the encoding each client reads (interop)
  acks           ACK msg_ref: how an acknowledged frame is named (§7.5)
  text           splitting long texts and files into OAEP-sized parts
  keystore       password-protected private key files
  login          password login that roams: scrypt, verifier, key blob, proofs
  password_hash  G17's argon2id password hashes (its login sends the password itself)
  g101_link      G101's server-link forms (ISO ts, whole-envelope sig), for an opted-in peer
"""

from __future__ import annotations

from .envelope import Envelope, parse, parse_obj
from .errors import ErrorCode, SocpError
from .frame_types import FrameType

__all__ = ["Envelope", "ErrorCode", "FrameType", "SocpError", "parse", "parse_obj"]
