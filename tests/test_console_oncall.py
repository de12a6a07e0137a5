"""On call: who a call reaches at a moment and the hand-offs of the week after it, worked out
purely (oncall_view) and shown on /console/oncall."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from ari_controller.config import Config, load_config, parse_config
from ari_controller.console.oncall_view import Handoff, oncall_views, policy_now, policy_view
from ari_controller.oncall.plan import Directory
from ari_controller.planning import make_planner
from tests.console_client import DEMO_CONFIG, Console

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")

# Two people handing over every day at 08:00 New York time, then a third named directly; a
# week that crosses the start of daylight-saving time (8 March 2026).
DAILY = {
    "users": [
        {"id": "ada", "name": "Ada Lane", "contacts": ["PJSIP/ada"]},
        {"id": "ben", "name": "Ben Hale", "contacts": ["PJSIP/ben"]},
        {"id": "cyd", "name": "Cyd Moss", "contacts": ["PJSIP/cyd"]},
    ],
    "schedules": [
        {
            "id": "desk-daily",
            "name": "Desk daily",
            "time_zone": "America/New_York",
            "layers": [
                {
                    "members": ["ada", "ben"],
                    "start": "2026-03-01T08:00:00",
                    "shift_length": "daily",
                }
            ],
        }
    ],
    "escalation_policies": [
        {
            "id": "desk",
            "name": "Desk",
            "rules": [{"schedules": ["desk-daily"]}, {"users": ["cyd"]}],
        },
        {
            "id": "pick",
            "name": "Pick one",
            "rules": [{"users": ["ada", "ben"]}, {"users": ["ada"]}],
        },
        {
            "id": "all",
            "name": "Everyone",
            "call_everyone_on_rule": True,
            "rules": [{"users": ["ada", "ben"]}, {"users": ["ada", "cyd"]}],
        },
    ],
    "numbers": [
        {"did": "+15550100", "name": "Desk", "routes": [{"label": "desk", "policy": "desk"}]}
    ],
}


def demo() -> tuple[Config, Directory]:
    config = load_config(DEMO_CONFIG)
    return config, Directory.build(config.users, config.schedules)


def daily() -> tuple[Config, Directory]:
    config = parse_config(DAILY)
    return config, Directory.build(config.users, config.schedules)


def names(config: Config, directory: Directory, policy_id: str, at: datetime) -> list[list[str]]:
    policy = next(p for p in config.escalation_policies if p.id == policy_id)
    return [[p.name for p in rule.people] for rule in policy_now(policy, at, directory).rules]


def test_demo_database_team_before_and_after_the_weekly_rotation_starts() -> None:
    config, directory = demo()
    # db-week starts on Monday 5 January 2026 at 09:00 Berlin (08:00 UTC).
    before = datetime(2026, 1, 5, 7, 30, tzinfo=UTC)
    after = datetime(2026, 1, 5, 8, 30, tzinfo=UTC)
    assert names(config, directory, "database", before) == [["Dan Declines"], ["Ana Accepts"]]
    assert names(config, directory, "database", after) == [
        ["Bea Busy"],
        ["Dan Declines"],
        ["Ana Accepts"],
    ]
    # The same people, in the same order, as the planner `explain` uses.
    planner = make_planner(config, directory)
    for at in (before, after):
        planned = [r.name for r in planner("database", at, random.Random(0)).responders]
        assert planned == [rule[0] for rule in names(config, directory, "database", at)]

    view = policy_view(config.escalation_policies[0], directory, datetime(2026, 1, 1, tzinfo=UTC))
    assert view.time_zone == "Europe/Berlin"
    handoff = Handoff(datetime(2026, 1, 5, 9, 0, tzinfo=BERLIN), "nobody", "Bea Busy")
    assert [week.handoffs for week in view.schedules] == [(handoff,)]
    assert view.handoffs == (
        Handoff(
            handoff.at,
            "Dan Declines, then Ana Accepts",
            "Bea Busy, then Dan Declines, then Ana Accepts",
        ),
    )
    # A one-person weekly rotation never hands off again.
    later = policy_view(config.escalation_policies[0], directory, after)
    assert later.schedules[0].now == "Bea Busy" and later.handoffs == ()


def test_a_daily_rotation_hands_off_at_eight_local_time_across_dst() -> None:
    config, directory = daily()
    start = datetime(2026, 3, 5, 0, 0, tzinfo=UTC)  # 4 March 19:00 in New York: Ben's shift
    (desk, _, _) = oncall_views(config, directory, start, days=7)
    week = desk.schedules[0]
    assert week.time_zone == "America/New_York" and week.now == "Ben Hale"
    moments = [h.at for h in week.handoffs]
    assert [m.date().day for m in moments] == [5, 6, 7, 8, 9, 10, 11]
    assert all((m.hour, m.minute) == (8, 0) for m in moments)
    assert moments[0].utcoffset() == timedelta(hours=-5)  # EST
    assert moments[3].utcoffset() == timedelta(hours=-4)  # EDT from 8 March
    assert [(h.before, h.after) for h in week.handoffs[:3]] == [
        ("Ben Hale", "Ada Lane"),
        ("Ada Lane", "Ben Hale"),
        ("Ben Hale", "Ada Lane"),
    ]
    # Two moments, two different people on call.
    assert names(config, directory, "desk", datetime(2026, 3, 5, 14, tzinfo=UTC)) == [
        ["Ada Lane"],
        ["Cyd Moss"],
    ]
    assert names(config, directory, "desk", datetime(2026, 3, 6, 14, tzinfo=UTC)) == [
        ["Ben Hale"],
        ["Cyd Moss"],
    ]
    assert desk.handoffs[0] == Handoff(
        moments[0], "Ben Hale, then Cyd Moss", "Ada Lane, then Cyd Moss"
    )
    assert len(desk.handoffs) == 7


def test_a_rule_that_picks_among_people_keeps_them_all_and_later_rules_honest() -> None:
    config, directory = daily()
    at = datetime(2026, 3, 5, 14, tzinfo=UTC)
    # Rule 1 picks Ada or Ben at random: Ada may not have been called, so rule 2 keeps her.
    assert names(config, directory, "pick", at) == [["Ada Lane", "Ben Hale"], ["Ada Lane"]]
    # Everyone on rule 1 is called: rule 2 does not call Ada again.
    assert names(config, directory, "all", at) == [["Ada Lane", "Ben Hale"], ["Cyd Moss"]]
    policies = {p.id: p for p in config.escalation_policies}
    assert (
        policy_now(policies["pick"], at, directory).order == "Ada Lane or Ben Hale, then Ada Lane"
    )
    assert (
        policy_now(policies["all"], at, directory).order == "Ada Lane and Ben Hale, then Cyd Moss"
    )
    # People only, no schedule: nothing ever hands off.
    assert policy_view(policies["pick"], directory, at).handoffs == ()


def section(text: str, heading: str) -> str:
    found = re.search(rf"<h2[^>]*>{re.escape(heading)}</h2>(.*?)</section>", text, re.S)
    assert found, f"no section {heading}"
    return found.group(1)


def reaches(text: str, heading: str) -> list[str]:
    """The names in the policy's 'a call reaches' list, in order."""
    ordered = section(text, heading).split("<ol>", 1)[1].split("</ol>", 1)[0]
    return re.findall(r"<strong>([^<]+)</strong>", ordered)


async def test_the_page_names_who_a_call_reaches_at_two_moments(console: Console) -> None:
    browser = await console.browser("ana", role="viewer")
    page = await browser.get("/console/oncall", at="2026-01-05T08:30", zone="Europe/Berlin")
    assert page.status == 200
    assert reaches(page.text, "Database team") == ["Dan Declines", "Ana Accepts"]
    database = section(page.text, "Database team")
    # The week's hand-off, in the schedule's zone, named.
    assert "2026-01-05 09:00 CET" in database and "Europe/Berlin" in database
    assert re.search(r"<td[^>]*>nobody</td>\s*<td[^>]*>Bea Busy</td>", database)
    assert "Site reliability" in page.text and "all of, in random order" in page.text

    # An ISO moment with an offset: 09:30 in Berlin, Bea's week has begun.
    page = await browser.get("/console/oncall", at="2026-01-05T08:30:00+00:00")
    assert reaches(page.text, "Database team") == ["Bea Busy", "Dan Declines", "Ana Accepts"]
    assert 'value="2026-01-05T09:30"' in page.text  # shown back in the chosen zone
    assert '<label for="oncall-at">' in page.text and 'type="datetime-local"' in page.text


async def test_the_page_defaults_to_now_and_refuses_a_bad_moment(console: Console) -> None:
    console.clock.now = datetime(2026, 1, 5, 7, 30, tzinfo=UTC)
    browser = await console.browser("ana", role="viewer")
    page = await browser.get("/console/oncall")
    assert "Now: 2026-01-05 08:30:00 CET (Europe/Berlin)" in page.text
    assert reaches(page.text, "Database team") == ["Dan Declines", "Ana Accepts"]

    page = await browser.get("/console/oncall", at="next tuesday")
    assert page.status == 400 and "is not a date and time" in page.text
