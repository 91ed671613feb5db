"""Detection: Sigma rules compiled into in-process matchers (docs/rules.md).

``RuleSet.load(paths)`` in :mod:`norrvakt.detect.engine` is the entry point; ``norrvakt hunt``
and ``norrvakt rules check`` are in :mod:`norrvakt.detect.cli`.
"""
