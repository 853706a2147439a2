"""Fault injection: a TCP fault proxy (``proxy``), and later in-process faults and experiments."""
