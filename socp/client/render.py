"""Events as the user sees them: one JSON object (--script) or one line of text.

JSON carries the exact values (JSON escaping and ensure_ascii keep the stream
safe for any terminal); the text form escapes every string a peer or a server
supplied (names, texts, ids, error codes and details, reasons) with
`display.safe_text` and is built as rich `Text`, never as markup.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any

from rich.text import Text

from . import events as ev
from .commands import ME_PREFIX
from .display import human_bytes, safe_text, short_id

# event class -> the "event" value of its JSON object.
EVENT_NAMES: dict[type, str] = {
    ev.Ready: "ready",
    ev.ConnectionState: "connection",
    ev.MessageReceived: "message",
    ev.MessageSent: "sent",
    ev.MessageRejected: "rejected",
    ev.NotDelivered: "not_delivered",
    ev.KeyChanged: "key_changed",
    ev.ChannelKeyReceived: "channel_key",
    ev.FileProgress: "progress",
    ev.FileReceived: "file",
    ev.FileSent: "file_sent",
    ev.FileFailed: "file_failed",
    ev.FileOffered: "file_offer",
    ev.TransferList: "files",
    ev.PresenceChanged: "presence",
    ev.QueryOpened: "query",
    ev.ListResult: "list",
    ev.WhoisResult: "whois",
    ev.HelpResult: "help",
    ev.ErrorReceived: "error",
    ev.Info: "info",
    ev.LoginRegistered: "registered",
    ev.LoginRegisterFailed: "register_failed",
    ev.LoggedIn: "logged_in",
}

# Dataclass field -> JSON key, where they differ.
_RENAMED = {"sender": "from", "recipient": "to", "is_self": "self"}


def event_to_json(event: ev.Event) -> dict[str, Any]:
    data = asdict(event)
    out: dict[str, Any] = {"event": EVENT_NAMES[type(event)]}
    for key, value in data.items():
        if isinstance(event, ev.ListResult) and key == "requested":
            continue  # --script prints only the lists it asked for
        if isinstance(event, ev.HelpResult) and key == "commands":
            value = [{"usage": usage, "help": text} for usage, text in value]
        if isinstance(event, ev.ListResult) and key == "users":
            value = [{_RENAMED.get(k, k): v for k, v in user.items()} for user in value]
        if isinstance(value, float):
            value = round(value, 3)
        out[_RENAMED.get(key, key)] = value
    return out


def event_to_json_line(event: ev.Event) -> str:
    return json.dumps(event_to_json(event), ensure_ascii=True, separators=(",", ":"))


def _clock(ts: int) -> str:
    return time.strftime("%H:%M", time.localtime(ts / 1000)) if ts else "--:--"


def _sent_on(ts: int) -> str:
    """When a message kept for us was sent: its date and time (it may be days old)."""
    return "sent " + time.strftime("%d %b %H:%M", time.localtime(ts / 1000))


def _who(label: str, user_id: str) -> str:
    name = safe_text(label)
    return name if label == user_id else f"{name} [{short_id(user_id)}]"


def _excerpt(text: str, limit: int = 40) -> str:
    shown = safe_text(text)
    return f'"{shown}"' if len(shown) <= limit else f'"{shown[:limit]}…"'


def event_text(event: ev.Event, *, now: float | None = None) -> Text | None:
    """The scrollback line for an event, or None for events shown elsewhere. Every
    line starts with its time: a message's own, else the time it is shown."""
    line = _event_body(event)
    if line is None or isinstance(event, (ev.MessageReceived, ev.MessageSent, ev.HelpResult)):
        return line
    stamped = _stamp(int((time.time() if now is None else now) * 1000))
    stamped.append_text(line)
    return stamped


def _stamp(ms: int) -> Text:
    """A line's time, dim. Appended to, not the base style: the rest keeps its own."""
    return Text.assemble((f"{_clock(ms)} ", "dim"))


def _action(text: str) -> str | None:
    """The action of a /me text ("waves" of "/me waves"), None for other texts."""
    return text[len(ME_PREFIX):] if text.startswith(ME_PREFIX) else None


def _event_body(event: ev.Event) -> Text | None:
    if isinstance(event, ev.MessageReceived):
        line = _stamp(event.ts)
        style = "bold cyan" if event.channel == "dm" else "bold"
        action = _action(event.text) if event.form != "undecryptable" else None
        if action is not None:
            line.append(f"* {_who(event.label, event.sender)} ", style=style)
            line.append(safe_text(action), style="italic")
        else:
            line.append(f"{_who(event.label, event.sender)}: ", style=style)
        if event.form == "undecryptable":
            line.append("[undecryptable (peer format)]", style="italic yellow")
        elif action is None:
            line.append(safe_text(event.text))
        if event.while_away:
            line.append(f"  (while you were away, {_sent_on(event.ts)})", style="italic dim")
        if event.form == "unencrypted":
            line.append("  [unencrypted]", style="yellow")
        if not event.verified:
            line.append("  [not signed]", style="bold red")
        if not event.trusted:
            line.append("  [untrusted key]", style="bold red")
        return line
    if isinstance(event, ev.MessageSent):
        where = "public" if event.channel == "public" else _who(event.label, event.recipient)
        line = _stamp(int(time.time() * 1000))
        action = _action(event.text)
        if action is not None:
            line.append("* you ", style="bold green")
            line.append(safe_text(action), style="italic")
            return line
        line.append(f"you → {where}: ", style="bold green")
        line.append(safe_text(event.text))
        return line
    if isinstance(event, ev.MessageRejected):
        return Text(f"! rejected a {event.channel} message from {safe_text(event.sender)}: "
                    f"{safe_text(event.reason)}", style="red")
    if isinstance(event, ev.NotDelivered):
        what = {"dm": "message to", "public": "public message", "file": "file"}[event.kind]
        target = "" if event.kind == "public" else " " + _who(event.label, event.recipient)
        if event.kind == "file":
            target = f" {safe_text(event.summary)} to" + (" public" if event.recipient == "public" else target)
            about = ""
        else:
            about = f" ({_excerpt(event.summary)})"
        return Text(f"! NOT DELIVERED: {what}{target}{about}: the server refused it: {safe_text(event.code)} "
                    f"{safe_text(event.detail)}", style="bold red")
    if isinstance(event, ev.KeyChanged):
        return Text(f"!! the key of {_who(event.label, event.user)} CHANGED: {event.old_fingerprint} -> "
                    f"{event.new_fingerprint}. Messages are marked untrusted; verify it, then "
                    f"/trust {safe_text(event.user)}", style="bold red")
    if isinstance(event, ev.ChannelKeyReceived):
        if event.sender == event.fingerprint:
            # A share from someone not (yet) in our list: a fingerprint is no name to a person.
            return Text(f"· got the public channel key of a user not in your list yet (their key "
                        f"{event.fingerprint[:19]}…); their public messages will show their name", style="dim")
        return Text(f"· got the public channel key of {_who(event.label, event.sender)}", style="dim")
    if isinstance(event, ev.FileProgress):
        return None  # shown in the status line
    if isinstance(event, ev.FileReceived):
        line = Text(f"· file from {_who(event.label, event.sender)}: {safe_text(event.name)} "
                    f"({human_bytes(event.size)}) saved as {safe_text(event.path)}"
                    + ("" if event.verified else " [manifest not signed]"), style="green")
        if not event.hashed:
            line.append("  [NOT VERIFIED BY HASH: the sender gave no SHA-256; only its size was checked, "
                        "its content may have been changed on the way]", style="bold red")
        return line
    if isinstance(event, ev.FileSent):
        resumed = f", resumed after {event.resumes} lost connection(s)" if event.resumes else ""
        return Text(f"· sent {safe_text(event.name)} ({human_bytes(event.size)}){resumed}", style="green")
    if isinstance(event, ev.FileFailed):
        if event.outgoing:
            to = f" to {safe_text(event.label)}" if event.label else ""
            return Text(f"! NOT SENT: file {safe_text(event.name)}{to}: {safe_text(event.reason)}", style="red")
        sender = safe_text(event.label) if event.label else short_id(event.sender) if event.sender else "?"
        return Text(f"! file {safe_text(event.name)} from {sender} failed: {safe_text(event.reason)}",
                    style="red")
    if isinstance(event, ev.FileOffered):
        where = " (public channel)" if event.channel == "public" else ""
        head = (f"· incoming file from {safe_text(event.label)}{where}: {safe_text(event.name)} "
                f"({human_bytes(event.size)})")
        if event.auto:
            return Text(f"{head}, receiving (saved by itself: at most {human_bytes(event.auto_limit)})",
                        style="green")
        return Text(f"{head}: larger than your auto-accept size ({human_bytes(event.auto_limit)}); "
                    f"/accept {safe_text(event.name)} to save it, /reject {safe_text(event.name)} to refuse it",
                    style="bold yellow")
    if isinstance(event, ev.TransferList):
        if not event.transfers:
            return Text("· no file is being sent or received")
        rows = [f"· files ({len(event.transfers)}):"]
        for t in event.transfers:
            arrow = "↑ to" if t.direction == "send" else "↓ from"
            percent = 100 * t.done / t.total if t.total else 100
            rows.append(f"    {arrow} {safe_text(t.peer)}: {safe_text(t.name)} {percent:.0f}% "
                        f"({human_bytes(t.done)} of {human_bytes(t.total)}), {t.state}")
        return Text("\n".join(rows))
    if isinstance(event, ev.PresenceChanged):
        if event.joined:
            return Text(f"→ {_who(event.label, event.user_id)} is online", style="green")
        return Text(f"← {_who(event.label, event.user_id)} left", style="dim")
    if isinstance(event, ev.QueryOpened):
        return Text(f"· direct messages with {_who(event.label, event.user_id)} (end-to-end encrypted)")
    if isinstance(event, ev.ListResult):
        if not event.requested:
            return None
        names = ", ".join(_who(u.label, u.user_id) + (" (you)" if u.is_self else "") for u in event.users)
        return Text(f"· online ({len(event.users)}): {names}")
    if isinstance(event, ev.WhoisResult):
        return Text(f"· {safe_text(event.label)}: id {safe_text(event.user_id)}, "
                    f"server {safe_text(event.server_id) or '?'}, "
                    f"key {event.fingerprint or '?'}"
                    + ("" if event.trusted else f" — NOT TRUSTED (pinned {event.pinned_fingerprint or 'none'})"))
    if isinstance(event, ev.HelpResult):
        width = max(len(usage) for usage, _ in event.commands)
        return Text("\n".join(f"  {usage:<{width}}  {text}" for usage, text in event.commands))
    if isinstance(event, ev.ErrorReceived):
        where = "server" if event.source == "server" else "error"
        return Text(f"! {where}: {safe_text(event.code)} {safe_text(event.detail)}", style="red")
    if isinstance(event, ev.Info):
        return Text(f"· {safe_text(event.text)}", style="dim")
    if isinstance(event, ev.LoginRegistered):
        return Text("· your encrypted key is stored on the server: you can log in from another machine "
                    "with `socp chat --login <your id>` and your password", style="green")
    if isinstance(event, ev.LoginRegisterFailed):
        return Text(f"! could not store your login on the server: {safe_text(event.code)} "
                    f"{safe_text(event.detail)} "
                    "(chatting is not affected; logging in from another machine will not work until this "
                    "succeeds, it is tried again on the next start)", style="yellow")
    if isinstance(event, ev.LoggedIn):
        return Text(f"· logged in as {event.user_id} on {event.server}: your key came back and opened "
                    f"with your password (key {event.fingerprint})", style="green")
    if isinstance(event, ev.ConnectionState):
        return None  # the status line (connection_text), and the Info / error lines around it
    if isinstance(event, ev.Ready):
        return Text(f"· connected to {event.server} as {safe_text(event.display_name)} [{event.user_id}], "
                    f"key {event.fingerprint}. /help for commands.", style="green")
    return None


def connection_text(event: ev.ConnectionState) -> str:
    retry = f" in {event.retry_in:.0f} s" if event.retry_in else ""
    head = {"connecting": "connecting", "reconnecting": f"RECONNECTING{retry}", "offline": "OFFLINE"}[event.state]
    return f"{head} — {safe_text(event.detail)}" + (" · what you type is queued" if event.state != "offline" else "")


def progress_text(event: ev.FileProgress) -> str:
    arrow = "↑" if event.direction == "send" else "↓"
    percent = 100 * event.done / event.total if event.total else 100
    eta = f", {event.eta:.0f}s left" if event.eta else ""
    return (f"{arrow} {safe_text(event.name)} {percent:.0f}% ({human_bytes(event.done)}/{human_bytes(event.total)}, "
            f"{human_bytes(event.rate)}/s{eta})")
