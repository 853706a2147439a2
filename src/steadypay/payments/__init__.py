"""Money-moving use cases: deposits, withdrawals and transfers as the API offers them."""
