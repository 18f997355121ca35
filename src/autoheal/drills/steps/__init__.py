"""The drill steps, one module per family of scenario kinds (:mod:`.kinds` maps each kind)."""
