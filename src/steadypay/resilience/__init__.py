"""Fault tolerance around every outbound call: circuit breakers, retries under a budget,
deadlines and bulkheads, composed into one pipeline per dependency (see ``pipeline.py``)."""
