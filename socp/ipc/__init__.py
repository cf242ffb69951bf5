"""What the actors say to each other over ZeroMQ: a closed set of typed messages
(`messages`), their msgpack wire form, and where each actor listens (`endpoints`);
and the words both sides use for where a link is in its life (`link_state`)."""
