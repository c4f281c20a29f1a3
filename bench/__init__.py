"""Kindly's benchmark against bare Temporal: ``make bench``, i.e. ``python -m bench``."""
