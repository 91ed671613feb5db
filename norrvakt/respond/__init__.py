"""Response actions: act on an alert or a case in another system, with a human in the loop."""
