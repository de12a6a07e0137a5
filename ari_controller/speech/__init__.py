"""Voice input: a caller says a route, a responder says "continue". Offline, small vocabulary."""

from ari_controller.speech.engines import (
    PocketSphinxEngine,
    RecognitionTimeout,
    Recognizer,
    SpeechUnavailable,
    engine_languages,
    get_recognizer,
    recognize,
    register_engine,
)
from ari_controller.speech.vocabulary import (
    ACCEPT,
    NO,
    YES,
    Decision,
    Recognition,
    Vocabulary,
    accept_vocabulary,
    confirm_vocabulary,
    decide,
    route_vocabulary,
)

__all__ = [
    "ACCEPT",
    "NO",
    "YES",
    "Decision",
    "PocketSphinxEngine",
    "Recognition",
    "RecognitionTimeout",
    "Recognizer",
    "SpeechUnavailable",
    "Vocabulary",
    "accept_vocabulary",
    "confirm_vocabulary",
    "decide",
    "engine_languages",
    "get_recognizer",
    "recognize",
    "register_engine",
    "route_vocabulary",
]
