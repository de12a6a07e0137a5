"""The web console: what the people answering the hotline look at (live calls, alerts and
their timelines, voicemail, the call log, who is on call, numbers, health), served by the
daemon's own HTTP server under /console as server-rendered HTML."""
