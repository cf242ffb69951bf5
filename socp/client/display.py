"""Making what a peer sent safe to show and to save (STYLE: escape before printing).

Peers choose display names, texts and file names; a terminal must never receive
their control characters (escape sequences can rewrite the screen) nor their
bidirectional overrides (which can make one name look like another).
"""

from __future__ import annotations

import unicodedata

# Bidi embedding / override / isolate controls, and the zero-width marks used to
# make two names look the same. All are category Cf, handled below with the rest.
_MAX_NAME_BYTES = 200
_FALLBACK_NAME = "download"


def _escape_char(char: str) -> str:
    code = ord(char)
    if char == "\n":
        return "\\n"
    if char == "\t":
        return "\\t"
    if char == "\r":
        return "\\r"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _is_unsafe(char: str) -> bool:
    # Cc: C0/C1 controls incl. ESC, DEL; Cf: format chars (bidi, zero-width);
    # Cs: lone surrogates; Zl/Zp: line and paragraph separators.
    return unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp")


def safe_text(text: str, *, keep_newlines: bool = False) -> str:
    """`text` with every control / format character shown as a visible escape."""
    if not isinstance(text, str):
        text = str(text)
    out = []
    for char in text:
        if keep_newlines and char == "\n":
            out.append(char)
        elif _is_unsafe(char):
            out.append(_escape_char(char))
        else:
            out.append(char)
    return "".join(out)


def safe_filename(name: str) -> str:
    """A file name a peer proposed, reduced to a harmless basename.

    Directory parts (either slash) are dropped, control and format characters
    removed, leading dots stripped (no hidden files, no '..'), the length bounded
    in UTF-8 bytes keeping the extension. Never empty.
    """
    if not isinstance(name, str):
        name = ""
    base = name.replace("\\", "/").split("/")[-1]
    base = "".join(char for char in base if not _is_unsafe(char) and char != "\x00")
    base = base.strip().lstrip(".").strip()
    if not base or base in (".", ".."):
        base = _FALLBACK_NAME
    if len(base.encode("utf-8")) > _MAX_NAME_BYTES:
        stem, dot, ext = base.rpartition(".")
        if not dot or len(ext.encode("utf-8")) > 16:
            stem, ext = base, ""
        keep = _MAX_NAME_BYTES - len(ext.encode("utf-8")) - (1 if ext else 0)
        stem = stem.encode("utf-8")[:keep].decode("utf-8", "ignore").rstrip()
        base = f"{stem}.{ext}" if ext else stem
    return base


def numbered_name(name: str, n: int) -> str:
    """'report.pdf', 2 -> 'report (2).pdf' (the usual browser convention)."""
    if n == 0:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return f"{name} ({n})"
    return f"{stem} ({n}).{ext}"


def short_id(user_id: str) -> str:
    """The first 8 characters of an id, escaped: ids come from the server."""
    return safe_text(str(user_id)[:8])


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"
