"""Benchmarks that print figures (`steadypay bench ...`); timing goals live here, not in tests."""
