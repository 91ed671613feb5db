"""What runs a node: the runtime that opens and wires the components, the pipeline that
journals what the sources receive, the indexer that moves it into the store, the server
(`norrvakt serve`) and the lifecycle of the data directory."""
