"""Demo traffic: realistic logs for all 14 municipalities, sent through the real listeners."""

from norrvakt.demo.traffic import DemoTraffic

__all__ = ["DemoTraffic"]
