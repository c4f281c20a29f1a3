"""The store: the application database (audit log, outbox, contacts), one module per family of tables."""
