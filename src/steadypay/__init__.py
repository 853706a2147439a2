"""steadypay: a payment ledger that keeps taking payments when its parts fail."""

__version__ = "0.1.0"
