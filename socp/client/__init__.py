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
  dialects      reading other teams' servers
  outbox        what we sent and what became of it ("no silent drops")
  file_resume   files cut by a lost connection: resumed, or said to have failed
  palette       the app's named colours, readable on dark and light terminals
  tls           trust for wss:// servers: the system store, plus --ca
  _files        private, atomic writes for the client's stores

Drivers (asyncio, websockets), each one concern:
  transport     the WebSocket: URL checks, dial with backoff, errors; `log_in`
                for `socp chat --login`
  wire          the open connection the parts below send through, in wire order
  hello         USER_HELLO and the list request this server answers (§7.1)
  user_queries  list requests and their answers, key look-ups, presence polling,
                messages held for a sender's name
  command_handlers   what each slash command does on a live connection
  file_sender   files being sent, one task each: paced, stopped, resumed after a
                reconnect
  sending       the node's grants (ChunkPacer) and one record per file being sent
  login_registration   storing the login on the server (LOGIN_REGISTER), once
  connection    ChatClient: connect, hello, serve (reader -> the parts above),
                close, reconnect; a thin coordinator
  script        --script: stdin commands, JSON lines out
  tui           the textual app
"""
