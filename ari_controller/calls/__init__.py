"""Call handling: one task per inbound call, told top-down in `flow.py`."""
