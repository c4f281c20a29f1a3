"""The revisions, oldest first by their numbers; each a module whose name is an identifier."""
