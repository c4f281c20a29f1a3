"""The domain: the account contract, its state and the rules that change it, the contact policy, and
the messages. Pure: no I/O, no Temporal client, importable from workflow code."""
