"""A demo stack so the daemon and the drills run on any machine.

Three programs, each ``python -m autoheal.demo.<name>``: ``exchange`` (a fake
exchange on loopback, REST and a websocket price stream on one port, with
fault modes for drills), ``feeder`` (stream in, ``prices.json`` and a heartbeat
with ``ws_last_msg_ts`` out) and ``trader`` (alternating signals, every order
through ``autoheal.guard``). Nothing is re-exported: the programs are the API.
"""

__all__: list[str] = []
