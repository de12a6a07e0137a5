"""The running daemon: built from the configuration (setup), started, reloaded and stopped
(app), the calls it runs (controller), what it tells the outside (http, metrics, systemd)."""
