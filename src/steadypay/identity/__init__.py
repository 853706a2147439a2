"""Users, their API keys, and who is calling (principals)."""
