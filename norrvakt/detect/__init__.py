"""Detection: Sigma rules and correlation rules compiled into in-process matchers, threat intel
and source health (docs/rules.md).

:class:`norrvakt.detect.detection.DetectionEngine` is what the server and the hunt use
(``load``, ``process(events)``, ``tick(now)``); ``RuleSet.load(paths)`` in
:mod:`norrvakt.detect.engine` is the single-event rule matcher under it; ``norrvakt hunt`` and
``norrvakt rules check`` are in :mod:`norrvakt.detect.cli`.
"""
