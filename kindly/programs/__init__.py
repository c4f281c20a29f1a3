"""The programs people run: the CLI, the HTTP API, the worker, the SMS sandbox and the local stack,
with the Temporal client code they share."""
