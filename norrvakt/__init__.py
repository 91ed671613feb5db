"""Norrvakt: central log management and threat detection for the Norrbotten municipalities."""

__version__ = "0.1.0"
