"""The signaling side of voip-sandbox: the wire schema, the call core, the switchboard
(all sans-I/O) and the websockets server that drives them."""
