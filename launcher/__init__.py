"""launch: run containers with secrets injected."""

__version__ = "0.1.0"
