"""The double-entry ledger: wallets (accounts), transfers, entries, and its audit."""
