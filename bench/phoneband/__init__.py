"""Voice input on phone-band audio: a fixed test set, its clips, and a measurement.

`testset` defines the phrases (fixed before any tuning) and renders them, deterministically,
through a simulated telephone line; `measure` runs a recognizer over them and prints the
table of counted / asked-again / wrong per category; `engines` holds the recognizers tried.
See RESULTS.md.
"""
