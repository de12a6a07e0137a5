"""Every sentence a caller or responder can hear, per language.

Templates use `{name}` placeholders. English is the reference: each translation must have
every key English has, with the same placeholders. `check_catalogue` finds a missing
translation or placeholder at check-config time; `render` raises rather than play silence.
Pure: no I/O.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "CATALOGUE",
    "KEYS",
    "REFERENCE_LANGUAGE",
    "CatalogueError",
    "catalogue_language",
    "check_catalogue",
    "menu_options",
    "menu_sentences",
    "placeholders",
    "render",
    "responder_hint",
    "spoken_key",
]

REFERENCE_LANGUAGE = "en"


class CatalogueError(LookupError):
    """A sentence cannot be rendered: unknown language or key, or a parameter is missing."""


_EN: dict[str, str] = {
    # The caller.
    "greeting_intro": "You have reached {number_name}.",
    "menu_option": "For {label}, press {digit}.",
    "menu_option_voice": "For {label}, press {digit} or say {label}.",
    "confirm_route_voice": "Did you say {label}? Say yes, or press {digit}.",
    "menu_repeat_hint": "To hear these options again, press star.",
    "invalid_choice": "Sorry, that is not a valid choice.",
    "no_choice": "Sorry, we did not receive your choice.",
    "please_hold": "Please hold while we connect you.",
    "connecting": "Connecting you now.",
    "outside_hours": "You are calling outside our support hours.",
    "no_one_available": "Sorry, nobody is available to take your call right now.",
    "voicemail_prompt": (
        "Nobody is available. Please leave a message after the tone, "
        "and press hash when you are done."
    ),
    "voicemail_saved": "Thank you. Your message has been recorded.",
    "goodbye": "Goodbye.",
    "unknown_number": "This number is not in service.",
    "technical_problem": "Sorry, we have a technical problem. Please try again later.",
    # The responder.
    "responder_intro": "This is {number_name}. You have a caller on hold.",
    "responder_intro_label": "This is {number_name}. You have a caller from {label} on hold.",
    "responder_intro_repeat": (
        "This is {number_name}. You have a caller on hold who is calling again."
    ),
    "responder_intro_label_repeat": (
        "This is {number_name}. You have a caller from {label} on hold, calling again."
    ),
    "pin_prompt": "Please enter your PIN, then press hash.",
    "pin_wrong": "That PIN is not valid.",
    "machine_check": "If you are a person, press any key now.",
    "voicemail_only_prompt": (
        "Please leave a message after the tone, and press hash when you are done."
    ),
    "responder_accept_hint": "Press any key to connect.",
    "responder_accept_key_hint": "Press {accept_key} to connect.",
    "responder_accept_key_hint_voice": "Press {accept_key} or say continue to connect.",
    "responder_accept_hint_voice": "Press any key or say continue to connect.",
    "responder_accept_decline_hint": "Press {accept_key} to connect, or {decline_key} to decline.",
    "responder_accept_decline_hint_voice": (
        "Press {accept_key} or say continue to connect, or press {decline_key} to decline."
    ),
    "call_taken": "The call was taken by someone else. Goodbye.",
    "connecting_responder": "Connecting you to the caller.",
    # A person called about an alert (a notification call).
    "notify_alert": "Alert from {number_name}: {what}.",
    "notify_missed_call": "a missed call from {caller} for {route}",
    "notify_voicemail": "a voicemail from {caller} for {route}",
    "notify_hung_up": "a caller who hung up before anyone answered, {caller}, for {route}",
    "notify_call": "a call from {caller} for {route}",
    "notify_unknown_caller": "an unknown number",
    "notify_keys": "Press 4 to acknowledge, 6 to resolve, 5 to escalate now, 1 to hear this again.",
    "notify_acknowledged": "Acknowledged. Goodbye.",
    "notify_resolved": "Resolved. Goodbye.",
    "notify_escalated": "Escalated. Goodbye.",
    "notify_already_acknowledged": "This alert is already acknowledged. Goodbye.",
    "notify_already_resolved": "This alert is already resolved. Goodbye.",
    "notify_failed": "Sorry, that did not work. Please try again from the web page. Goodbye.",
    # Words inside other sentences.
    "key_star": "star",
    "key_hash": "hash",
}

_DE: dict[str, str] = {
    "greeting_intro": "Sie haben {number_name} erreicht.",
    "menu_option": "Für {label} drücken Sie {digit}.",
    "menu_option_voice": "Für {label} drücken Sie {digit} oder sagen Sie {label}.",
    "confirm_route_voice": "Haben Sie {label} gesagt? Sagen Sie ja, oder drücken Sie {digit}.",
    "menu_repeat_hint": "Um diese Auswahl noch einmal zu hören, drücken Sie die Sterntaste.",
    "invalid_choice": "Diese Auswahl ist leider nicht gültig.",
    "no_choice": "Wir haben leider keine Auswahl erhalten.",
    "please_hold": "Bitte bleiben Sie am Apparat, wir verbinden Sie.",
    "connecting": "Sie werden jetzt verbunden.",
    "outside_hours": "Sie rufen außerhalb unserer Supportzeiten an.",
    "no_one_available": "Leider ist gerade niemand erreichbar, der Ihren Anruf annehmen kann.",
    "voicemail_prompt": (
        "Leider ist niemand erreichbar. Bitte hinterlassen Sie nach dem Signalton eine "
        "Nachricht und drücken Sie die Rautetaste, wenn Sie fertig sind."
    ),
    "voicemail_saved": "Vielen Dank. Ihre Nachricht wurde aufgezeichnet.",
    "goodbye": "Auf Wiederhören.",
    "unknown_number": "Diese Rufnummer ist nicht vergeben.",
    "technical_problem": (
        "Leider gibt es ein technisches Problem. Bitte versuchen Sie es später noch einmal."
    ),
    "responder_intro": "Hier ist {number_name}. Ein Anrufer wartet in der Leitung.",
    "responder_intro_label": (
        "Hier ist {number_name}. Ein Anrufer von {label} wartet in der Leitung."
    ),
    "responder_intro_repeat": (
        "Hier ist {number_name}. Ein Anrufer wartet in der Leitung, er ruft erneut an."
    ),
    "responder_intro_label_repeat": (
        "Hier ist {number_name}. Ein Anrufer von {label} wartet in der Leitung, er ruft erneut an."
    ),
    "pin_prompt": "Bitte geben Sie Ihre PIN ein und drücken Sie dann die Rautetaste.",
    "pin_wrong": "Diese PIN ist nicht gültig.",
    "machine_check": "Wenn Sie eine Person sind, drücken Sie jetzt eine beliebige Taste.",
    "voicemail_only_prompt": (
        "Bitte hinterlassen Sie nach dem Signalton eine Nachricht und drücken Sie"
        " danach die Rautetaste."
    ),
    "responder_accept_hint": "Drücken Sie eine beliebige Taste, um verbunden zu werden.",
    "responder_accept_key_hint": "Drücken Sie {accept_key}, um verbunden zu werden.",
    "responder_accept_key_hint_voice": (
        "Drücken Sie {accept_key} oder sagen Sie weiter, um verbunden zu werden."
    ),
    "responder_accept_hint_voice": (
        "Drücken Sie eine beliebige Taste oder sagen Sie weiter, um verbunden zu werden."
    ),
    "responder_accept_decline_hint": (
        "Drücken Sie {accept_key}, um verbunden zu werden, oder {decline_key}, um abzulehnen."
    ),
    "responder_accept_decline_hint_voice": (
        "Drücken Sie {accept_key} oder sagen Sie weiter, um verbunden zu werden, "
        "oder drücken Sie {decline_key}, um abzulehnen."
    ),
    "call_taken": "Der Anruf wurde bereits von jemand anderem angenommen. Auf Wiederhören.",
    "connecting_responder": "Sie werden jetzt mit dem Anrufer verbunden.",
    "notify_alert": "Alarm von {number_name}: {what}.",
    "notify_missed_call": "ein verpasster Anruf von {caller} für {route}",
    "notify_voicemail": "eine Sprachnachricht von {caller} für {route}",
    "notify_hung_up": "ein Anrufer, der aufgelegt hat, bevor jemand abnahm, {caller}, für {route}",
    "notify_call": "ein Anruf von {caller} für {route}",
    "notify_unknown_caller": "einer unbekannten Nummer",
    "notify_keys": (
        "Drücken Sie 4 zum Bestätigen, 6 zum Erledigen, 5 zum sofortigen Eskalieren, "
        "1 zum erneuten Anhören."
    ),
    "notify_acknowledged": "Bestätigt. Auf Wiederhören.",
    "notify_resolved": "Erledigt. Auf Wiederhören.",
    "notify_escalated": "Eskaliert. Auf Wiederhören.",
    "notify_already_acknowledged": "Dieser Alarm ist bereits bestätigt. Auf Wiederhören.",
    "notify_already_resolved": "Dieser Alarm ist bereits erledigt. Auf Wiederhören.",
    "notify_failed": (
        "Das hat leider nicht geklappt. Bitte versuchen Sie es auf der Webseite. Auf Wiederhören."
    ),
    "key_star": "Stern",
    "key_hash": "Raute",
}

_FR: dict[str, str] = {
    "greeting_intro": "Vous êtes en ligne avec {number_name}.",
    "menu_option": "Pour {label}, tapez {digit}.",
    "menu_option_voice": "Pour {label}, tapez {digit} ou dites {label}.",
    "confirm_route_voice": "Avez-vous dit {label} ? Dites oui, ou tapez {digit}.",
    "menu_repeat_hint": "Pour réécouter ces choix, tapez étoile.",
    "invalid_choice": "Désolé, ce choix n'est pas valide.",
    "no_choice": "Désolé, nous n'avons pas reçu votre choix.",
    "please_hold": "Veuillez patienter, nous vous mettons en relation.",
    "connecting": "Nous vous mettons en relation.",
    "outside_hours": "Vous appelez en dehors de nos heures de support.",
    "no_one_available": "Désolé, personne n'est disponible pour prendre votre appel.",
    "voicemail_prompt": (
        "Personne n'est disponible. Veuillez laisser un message après le bip sonore, "
        "puis tapez dièse lorsque vous avez terminé."
    ),
    "voicemail_saved": "Merci. Votre message a été enregistré.",
    "goodbye": "Au revoir.",
    "unknown_number": "Ce numéro n'est pas en service.",
    "technical_problem": (
        "Désolé, nous rencontrons un problème technique. Veuillez réessayer plus tard."
    ),
    "responder_intro": "Ici {number_name}. Un appelant est en attente.",
    "responder_intro_label": "Ici {number_name}. Un appelant de {label} est en attente.",
    "responder_intro_repeat": "Ici {number_name}. Un appelant est en attente, il rappelle.",
    "responder_intro_label_repeat": (
        "Ici {number_name}. Un appelant de {label} est en attente, il rappelle."
    ),
    "pin_prompt": "Veuillez saisir votre code PIN, puis appuyez sur dièse.",
    "pin_wrong": "Ce code PIN n'est pas valide.",
    "machine_check": "Si vous êtes une personne, appuyez maintenant sur une touche.",
    "voicemail_only_prompt": ("Veuillez laisser un message après le bip, puis appuyez sur dièse."),
    "responder_accept_hint": "Appuyez sur une touche pour prendre l'appel.",
    "responder_accept_key_hint": "Appuyez sur {accept_key} pour prendre l'appel.",
    "responder_accept_key_hint_voice": (
        "Appuyez sur {accept_key} ou dites continuer pour prendre l'appel."
    ),
    "responder_accept_hint_voice": (
        "Appuyez sur une touche ou dites continuer pour prendre l'appel."
    ),
    "responder_accept_decline_hint": (
        "Tapez {accept_key} pour prendre l'appel, ou {decline_key} pour le refuser."
    ),
    "responder_accept_decline_hint_voice": (
        "Tapez {accept_key} ou dites continuer pour prendre l'appel, "
        "ou tapez {decline_key} pour le refuser."
    ),
    "call_taken": "L'appel a été pris par quelqu'un d'autre. Au revoir.",
    "connecting_responder": "Nous vous mettons en relation avec l'appelant.",
    "notify_alert": "Alerte de {number_name} : {what}.",
    "notify_missed_call": "un appel manqué de {caller} pour {route}",
    "notify_voicemail": "un message vocal de {caller} pour {route}",
    "notify_hung_up": "un appelant qui a raccroché avant toute réponse, {caller}, pour {route}",
    "notify_call": "un appel de {caller} pour {route}",
    "notify_unknown_caller": "un numéro inconnu",
    "notify_keys": (
        "Tapez 4 pour prendre en charge, 6 pour résoudre, 5 pour escalader maintenant, "
        "1 pour réécouter."
    ),
    "notify_acknowledged": "Pris en charge. Au revoir.",
    "notify_resolved": "Résolu. Au revoir.",
    "notify_escalated": "Escaladé. Au revoir.",
    "notify_already_acknowledged": "Cette alerte est déjà prise en charge. Au revoir.",
    "notify_already_resolved": "Cette alerte est déjà résolue. Au revoir.",
    "notify_failed": "Désolé, cela n'a pas fonctionné. Veuillez réessayer sur le site. Au revoir.",
    "key_star": "étoile",
    "key_hash": "dièse",
}

_ES: dict[str, str] = {
    "greeting_intro": "Ha llamado a {number_name}.",
    "menu_option": "Para {label}, pulse {digit}.",
    "menu_option_voice": "Para {label}, pulse {digit} o diga {label}.",
    "confirm_route_voice": "¿Ha dicho {label}? Diga sí, o pulse {digit}.",
    "menu_repeat_hint": "Para volver a escuchar estas opciones, pulse asterisco.",
    "invalid_choice": "Lo sentimos, esa opción no es válida.",
    "no_choice": "Lo sentimos, no hemos recibido su elección.",
    "please_hold": "Por favor, espere mientras le conectamos.",
    "connecting": "Le estamos conectando.",
    "outside_hours": "Está llamando fuera de nuestro horario de soporte.",
    "no_one_available": "Lo sentimos, ahora mismo no hay nadie disponible para atender su llamada.",
    "voicemail_prompt": (
        "No hay nadie disponible. Por favor, deje un mensaje después del tono "
        "y pulse almohadilla cuando termine."
    ),
    "voicemail_saved": "Gracias. Su mensaje ha sido grabado.",
    "goodbye": "Adiós.",
    "unknown_number": "Este número no está en servicio.",
    "technical_problem": (
        "Lo sentimos, tenemos un problema técnico. Por favor, inténtelo de nuevo más tarde."
    ),
    "responder_intro": "Le habla {number_name}. Hay una llamada en espera.",
    "responder_intro_label": "Le habla {number_name}. Hay una llamada de {label} en espera.",
    "responder_intro_repeat": (
        "Le habla {number_name}. Hay una llamada en espera de alguien que vuelve a llamar."
    ),
    "responder_intro_label_repeat": (
        "Le habla {number_name}. Hay una llamada de {label} en espera, que vuelve a llamar."
    ),
    "pin_prompt": "Introduzca su PIN y pulse almohadilla.",
    "pin_wrong": "Ese PIN no es válido.",
    "machine_check": "Si es usted una persona, pulse ahora cualquier tecla.",
    "voicemail_only_prompt": (
        "Deje su mensaje después de la señal y pulse almohadilla al terminar."
    ),
    "responder_accept_hint": "Pulse cualquier tecla para conectar.",
    "responder_accept_key_hint": "Pulse {accept_key} para conectar.",
    "responder_accept_key_hint_voice": "Pulse {accept_key} o diga continuar para conectar.",
    "responder_accept_hint_voice": "Pulse cualquier tecla o diga continuar para conectar.",
    "responder_accept_decline_hint": (
        "Pulse {accept_key} para conectar, o {decline_key} para rechazar."
    ),
    "responder_accept_decline_hint_voice": (
        "Pulse {accept_key} o diga continuar para conectar, o pulse {decline_key} para rechazar."
    ),
    "call_taken": "Otra persona ha atendido la llamada. Adiós.",
    "connecting_responder": "Le estamos conectando con la persona que llama.",
    "notify_alert": "Alerta de {number_name}: {what}.",
    "notify_missed_call": "una llamada perdida de {caller} para {route}",
    "notify_voicemail": "un mensaje de voz de {caller} para {route}",
    "notify_hung_up": "una persona que colgó antes de que nadie contestara, {caller}, para {route}",
    "notify_call": "una llamada de {caller} para {route}",
    "notify_unknown_caller": "un número desconocido",
    "notify_keys": (
        "Pulse 4 para confirmar, 6 para resolver, 5 para escalar ahora, 1 para volver a escuchar."
    ),
    "notify_acknowledged": "Confirmado. Adiós.",
    "notify_resolved": "Resuelto. Adiós.",
    "notify_escalated": "Escalado. Adiós.",
    "notify_already_acknowledged": "Esta alerta ya está confirmada. Adiós.",
    "notify_already_resolved": "Esta alerta ya está resuelta. Adiós.",
    "notify_failed": "Lo sentimos, no ha funcionado. Inténtelo en la página web. Adiós.",
    "key_star": "asterisco",
    "key_hash": "almohadilla",
}

CATALOGUE: Mapping[str, Mapping[str, str]] = {"en": _EN, "de": _DE, "fr": _FR, "es": _ES}
"""language → key → template."""

KEYS: tuple[str, ...] = tuple(_EN)
"""Every sentence key (the reference language's keys)."""


def placeholders(template: str) -> set[str]:
    """The `{name}` placeholders of a template; raises ValueError on a malformed one."""
    names: set[str] = set()
    for _literal, field, _spec, _conversion in string.Formatter().parse(template):
        if field is None:
            continue
        if not field.isidentifier():
            raise ValueError(f"placeholder {{{field}}} is not a plain name")
        names.add(field)
    return names


def catalogue_language(
    language: str, catalogue: Mapping[str, Mapping[str, str]] = CATALOGUE
) -> str:
    """The catalogue language for a tag: "de-AT" and "de_DE" speak "de"."""
    tag = language.strip().replace("_", "-").lower()
    if tag in catalogue:
        return tag
    primary = tag.split("-", 1)[0]
    if primary in catalogue:
        return primary
    raise CatalogueError(
        f"no sentences in language {language!r} (have: {', '.join(sorted(catalogue))})"
    )


def render(key: str, language: str, /, **params: object) -> str:
    """The sentence `key` in `language` with `params` filled in; raises CatalogueError."""
    templates = CATALOGUE[catalogue_language(language)]
    try:
        template = templates[key]
    except KeyError:
        raise CatalogueError(f"sentence {key!r} is missing in language {language!r}") from None
    needed = placeholders(template)
    missing = needed - params.keys()
    if missing:
        raise CatalogueError(f"sentence {key!r} ({language}) needs {', '.join(sorted(missing))}")
    return template.format(**{name: params[name] for name in needed})


def check_catalogue(
    languages: Iterable[str], catalogue: Mapping[str, Mapping[str, str]] = CATALOGUE
) -> list[str]:
    """Problems that would make a call in one of `languages` play silence; empty when fine.

    Each language must exist and have every key of the reference language, with exactly the
    same placeholders, and no empty sentence.
    """
    problems: list[str] = []
    reference = catalogue.get(REFERENCE_LANGUAGE, {})
    if not reference:
        return [f"the reference language {REFERENCE_LANGUAGE!r} is missing from the catalogue"]
    checked: set[str] = set()
    for language in languages:
        try:
            resolved = catalogue_language(language, catalogue)
        except CatalogueError as error:
            problems.append(str(error))
            continue
        if resolved in checked:
            continue
        checked.add(resolved)
        templates = catalogue[resolved]
        for key, reference_template in reference.items():
            template = templates.get(key)
            if template is None:
                problems.append(f"{resolved}: sentence {key!r} has no translation")
                continue
            if not template.strip():
                problems.append(f"{resolved}: sentence {key!r} is empty")
                continue
            try:
                have = placeholders(template)
            except ValueError as error:
                problems.append(f"{resolved}: sentence {key!r}: {error}")
                continue
            want = placeholders(reference_template)
            for name in sorted(want - have):
                problems.append(f"{resolved}: sentence {key!r} lacks {{{name}}}")
            for name in sorted(have - want):
                problems.append(f"{resolved}: sentence {key!r} has unknown {{{name}}}")
        for key in sorted(templates.keys() - reference.keys()):
            problems.append(f"{resolved}: sentence {key!r} is not in {REFERENCE_LANGUAGE!r}")
    return problems


def spoken_key(key: str, language: str) -> str:
    """How a phone key is said: "*" → "star", "#" → "hash", digits as they are."""
    if key == "*":
        return render("key_star", language)
    if key == "#":
        return render("key_hash", language)
    return key


def menu_sentences(
    number_name: str,
    greeting: str | None,
    routes: Sequence[tuple[str, str]],
    language: str,
    *,
    only_greeting: bool = False,
    voice: bool = False,
) -> list[str]:
    """The greeting and menu a caller hears, in order.

    A custom `greeting` text replaces the generated intro. `only_greeting` plays the greeting
    alone. With a single route there is nothing to choose, so no menu. `routes` are
    `(digit, label)` pairs in the order they are announced. (A greeting *file* is played by the
    call flow, followed by `menu_options` unless only_greeting.)
    """
    first = greeting.strip() if greeting and greeting.strip() else None
    sentences = [first or render("greeting_intro", language, number_name=number_name)]
    if only_greeting:
        return sentences
    return sentences + menu_options(routes, language, voice=voice)


def menu_options(
    routes: Sequence[tuple[str, str]], language: str, *, voice: bool = False
) -> list[str]:
    """One sentence per route, then how to hear them again; nothing for fewer than 2 routes."""
    if len(routes) < 2:
        return []
    key = "menu_option_voice" if voice else "menu_option"
    sentences = [
        render(key, language, label=label, digit=spoken_key(digit, language))
        for digit, label in routes
    ]
    sentences.append(render("menu_repeat_hint", language))
    return sentences


def responder_hint(
    language: str,
    *,
    voice: bool = False,
    accept_key: str | None = None,
    decline_key: str | None = None,
) -> str:
    """What the responder is told to press (or say) after the intro."""
    if decline_key is None and accept_key is None:
        return render("responder_accept_hint_voice" if voice else "responder_accept_hint", language)
    if decline_key is None:
        # Only some keys accept: naming "any key" would make others think they accepted.
        key = "responder_accept_key_hint_voice" if voice else "responder_accept_key_hint"
        return render(key, language, accept_key=spoken_key(accept_key or "1", language))
    key = "responder_accept_decline_hint_voice" if voice else "responder_accept_decline_hint"
    return render(
        key,
        language,
        accept_key=spoken_key(accept_key or "1", language),
        decline_key=spoken_key(decline_key, language),
    )
