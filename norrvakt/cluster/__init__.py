"""Several nodes, no single point of failure (issue 13): NATS JetStream as the replicated log
between the stages — ingest nodes publish envelopes of parsed events to one stream per tenant,
and the journal integrator, the store writers and detection consume them."""
