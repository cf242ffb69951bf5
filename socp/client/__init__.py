"""`socp chat`: the terminal client. A pure core and thin drivers (STYLE §1).

Pure (no sockets, no asyncio):
  events        the frozen dataclasses the core reports
  commands      the one table of slash commands: help, argument checks, completion
  display       escaping what peers send, safe file names
  session       ClientSession: frames out of commands, events out of frames; a facade
                over the parts below, each one concern
  user_identity who this client is: id, keys, clock (shared by the parts)
  roster        who is on the server, names, and the server's dialect
  keyring       the users' keys in use, under TOFU pins (trust)
  verify        the one path that checks what users sign
  chat_messages DMs and the public channel, both ways
  incoming_files, outgoing_files   files, each way
  trust         TOFU key pins
  channel_keys  public channel sender keys (own and peers')
  downloads     private temp files, verified before they get their final name
  home          the client home directory (identity, key stores, pins, downloads)
  render        events as JSON objects (--script) or text lines
  windows       the app's windows (buffers): routing, unread, mentions, history
  roaming       password login on a new machine: the frames, their checks

Drivers:
  transport     the WebSocket: URL checks, dial with backoff, errors; `log_in`
                for `socp chat --login`
  sending       files being sent: the node's grants (ChunkPacer), one record each
  connection    ChatClient: hello, pump both ways, commands, store the login
                (LOGIN_REGISTER), presence polling
  script        --script: stdin commands, JSON lines out
  tui           the textual app
"""
