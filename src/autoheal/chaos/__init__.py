"""Chaos mode: fault injectors, the loopback fault proxy, drills and the blast-radius guard."""
