"""What a drill runs on: the fake exchange, the demo stack under a real daemon, a running target."""
