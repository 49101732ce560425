"""Hubkeeper: an operations console for JupyterHub."""

__version__ = "0.1.0"
