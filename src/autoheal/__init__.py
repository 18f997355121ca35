"""autoheal: keeps a trading-bot runtime alive and safe."""

__version__ = "0.1.0"
__all__ = ["__version__"]
