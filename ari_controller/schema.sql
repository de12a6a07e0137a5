-- The Postgres schema of ari_controller: alerts and the full timeline of every call.
--
-- This file is both the canonical schema and its migration history. `ari-controller migrate`
-- (ari_controller/store/migrate.py) runs the preamble below every time, then each
-- "-- migration: <version> <description>" section that schema_migrations does not list yet,
-- in file order, each in its own transaction. Never edit a section once it has shipped:
-- append a new section instead (migrate refuses to run when an applied section changed).
--
-- Ids are chosen by the controller (uuids, and the ARI channel id for legs) so that every
-- write can be retried after an ambiguous failure without creating a duplicate.

CREATE TABLE IF NOT EXISTS schema_migrations (
    version     text PRIMARY KEY,
    description text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- migration: 0001 alerts, calls, legs, timeline, voicemails, notification outbox

-- One alert per inbound call: what on-call people see and act on.
CREATE TABLE alerts (
    id                uuid PRIMARY KEY,
    number_did        text NOT NULL,
    number_name       text NOT NULL,
    route             text,
    caller_id         text,
    status            text NOT NULL DEFAULT 'open'
                      CONSTRAINT alerts_status_check
                      CHECK (status IN ('open', 'accepted', 'resolved')),
    accepted_by       text,
    resolved_by       text,
    created_at        timestamptz NOT NULL,
    accepted_at       timestamptz,
    resolved_at       timestamptz,
    -- Why the call ended: 'connected', 'voicemail', 'nobody_available', 'abandoned',
    -- 'unknown_number', ... The set grows with the call flow, so only the shape is checked.
    ended_reason      text CONSTRAINT alerts_ended_reason_check
                      CHECK (ended_reason ~ '^[a-z][a-z0-9_]*$'),
    escalation_count  integer NOT NULL DEFAULT 0
                      CONSTRAINT alerts_escalation_count_check CHECK (escalation_count >= 0),
    last_escalated_at timestamptz,
    voicemail_id      uuid,
    CONSTRAINT alerts_accepted_has_time CHECK (status <> 'accepted' OR accepted_at IS NOT NULL),
    CONSTRAINT alerts_resolved_has_time CHECK (status <> 'resolved' OR resolved_at IS NOT NULL)
);
CREATE INDEX alerts_created_at_idx ON alerts (created_at DESC);
CREATE INDEX alerts_status_idx ON alerts (status, created_at DESC);

-- The inbound call behind an alert (the caller's channel).
CREATE TABLE calls (
    id                uuid PRIMARY KEY,
    alert_id          uuid NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    caller_channel_id text NOT NULL,
    did               text NOT NULL,
    caller_id         text,
    started_at        timestamptz NOT NULL,
    answered_at       timestamptz,
    ended_at          timestamptz,
    outcome           text CONSTRAINT calls_outcome_check CHECK (outcome ~ '^[a-z][a-z0-9_]*$')
);
CREATE INDEX calls_alert_id_idx ON calls (alert_id);
CREATE INDEX calls_caller_channel_id_idx ON calls (caller_channel_id);

-- Every outbound leg to a responder; id is the leg's ARI channel id.
CREATE TABLE call_legs (
    id           text PRIMARY KEY CONSTRAINT call_legs_id_check CHECK (id <> ''),
    call_id      uuid NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    user_id      text NOT NULL,
    contact      text NOT NULL,
    mode         text NOT NULL
                 CONSTRAINT call_legs_mode_check CHECK (mode IN ('sequential', 'simultaneous')),
    attempt      integer NOT NULL CONSTRAINT call_legs_attempt_check CHECK (attempt >= 1),
    placed_at    timestamptz NOT NULL,
    answered_at  timestamptz,
    ended_at     timestamptz,
    outcome      text CONSTRAINT call_legs_outcome_check
                 CHECK (outcome IN ('accepted', 'busy', 'no_answer', 'declined', 'failed',
                                    'taken_by_other', 'abandoned', 'cancelled')),
    -- Q.850 cause from ChannelDestroyed/ChannelHangupRequest (16 normal, 17 busy, ...).
    hangup_cause integer CONSTRAINT call_legs_hangup_cause_check
                 CHECK (hangup_cause BETWEEN 0 AND 127),
    CONSTRAINT call_legs_ended_has_outcome CHECK (ended_at IS NULL OR outcome IS NOT NULL)
);
CREATE INDEX call_legs_call_id_idx ON call_legs (call_id, attempt);

-- The call timeline: the audit record, and what a restarted controller reads back.
-- The primary key (call_id, seq) is also the index for reading one call's timeline.
CREATE TABLE call_events (
    call_id uuid NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    seq     integer NOT NULL CONSTRAINT call_events_seq_check CHECK (seq >= 0),
    at      timestamptz NOT NULL,
    kind    text NOT NULL CONSTRAINT call_events_kind_check CHECK (kind <> ''),
    data    jsonb NOT NULL DEFAULT '{}'
            CONSTRAINT call_events_data_check CHECK (jsonb_typeof(data) = 'object'),
    PRIMARY KEY (call_id, seq)
);

CREATE TABLE voicemails (
    id             uuid PRIMARY KEY,
    call_id        uuid NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    alert_id       uuid NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    recording_name text NOT NULL,
    duration_s     double precision
                   CONSTRAINT voicemails_duration_check CHECK (duration_s >= 0),
    format         text NOT NULL,
    -- NULL when the audio stays in Asterisk's recordings directory only.
    audio          bytea,
    created_at     timestamptz NOT NULL
);
CREATE INDEX voicemails_alert_id_idx ON voicemails (alert_id);
CREATE INDEX voicemails_call_id_idx ON voicemails (call_id);

ALTER TABLE alerts ADD CONSTRAINT alerts_voicemail_id_fkey
    FOREIGN KEY (voicemail_id) REFERENCES voicemails (id) ON DELETE SET NULL;

-- Webhook/chat notifications written in the same store as the alert change they announce,
-- then sent (and marked sent) by the notifier. notification_id makes queueing idempotent.
CREATE TABLE notification_outbox (
    id              bigserial PRIMARY KEY,
    notification_id uuid NOT NULL UNIQUE,
    alert_id        uuid NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    kind            text NOT NULL CONSTRAINT notification_outbox_kind_check CHECK (kind <> ''),
    payload         jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL,
    sent_at         timestamptz,
    attempts        integer NOT NULL DEFAULT 0
                    CONSTRAINT notification_outbox_attempts_check CHECK (attempts >= 0),
    last_error      text
);
CREATE INDEX notification_outbox_unsent_idx ON notification_outbox (id) WHERE sent_at IS NULL;
CREATE INDEX notification_outbox_alert_id_idx ON notification_outbox (alert_id);

-- migration: 0002 alert lifecycle open/acknowledged/resolved, escalation, deliveries, tokens

-- A responder accepting a call acknowledges its alert: one lifecycle for calls, people and
-- machines (open -> acknowledged -> resolved, or open -> resolved).
ALTER TABLE alerts DROP CONSTRAINT alerts_status_check;
ALTER TABLE alerts DROP CONSTRAINT alerts_accepted_has_time;
ALTER TABLE alerts RENAME COLUMN accepted_by TO acknowledged_by;
ALTER TABLE alerts RENAME COLUMN accepted_at TO acknowledged_at;
UPDATE alerts SET status = 'acknowledged' WHERE status = 'accepted';
ALTER TABLE alerts ADD CONSTRAINT alerts_status_check
    CHECK (status IN ('open', 'acknowledged', 'resolved'));
ALTER TABLE alerts ADD CONSTRAINT alerts_acknowledged_has_time
    CHECK (status <> 'acknowledged' OR acknowledged_at IS NOT NULL);
-- The escalation policy of the route the caller chose: whom an escalation notifies.
ALTER TABLE alerts ADD COLUMN policy_id text;

-- The outbox rows are alert events (alert.created, alert.escalated, ...) that the alert
-- engine expands into escalations and deliveries; sent_at is when it did.

-- One escalation per alert: the engine notifies rule `next_rule` of the policy at `due_at`,
-- then moves on, until the alert is acknowledged or resolved or every round has run.
-- Any number of daemons may run the engine: a row lock (SKIP LOCKED) decides who acts.
CREATE TABLE alert_escalations (
    alert_id   uuid PRIMARY KEY REFERENCES alerts (id) ON DELETE CASCADE,
    policy_id  text NOT NULL,
    reason     text NOT NULL,
    next_rule  integer NOT NULL DEFAULT 0
               CONSTRAINT alert_escalations_next_rule_check CHECK (next_rule >= 0),
    round      integer NOT NULL DEFAULT 0
               CONSTRAINT alert_escalations_round_check CHECK (round >= 0),
    due_at     timestamptz NOT NULL,
    state      text NOT NULL DEFAULT 'active'
               CONSTRAINT alert_escalations_state_check
               CHECK (state IN ('active', 'held', 'done', 'stopped')),
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX alert_escalations_due_idx ON alert_escalations (due_at)
    WHERE state IN ('active', 'held');

-- Every message about an alert to one destination (a chat or webhook endpoint); id is also
-- the webhook-id, the same on every retry. A sender claims a due row for `claimed_until`
-- (a daemon that dies after its claim leaves the row to be claimed again), sends, records.
CREATE TABLE deliveries (
    id            uuid PRIMARY KEY,
    alert_id      uuid NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    event         text NOT NULL CONSTRAINT deliveries_event_check CHECK (event <> ''),
    destination   text NOT NULL CONSTRAINT deliveries_destination_check CHECK (destination <> ''),
    user_id       text,  -- the person notified (notification rules); NULL: a number's action
    payload       jsonb NOT NULL
                  CONSTRAINT deliveries_payload_check CHECK (jsonb_typeof(payload) = 'object'),
    state         text NOT NULL DEFAULT 'pending'
                  CONSTRAINT deliveries_state_check
                  CHECK (state IN ('pending', 'sent', 'dead', 'cancelled')),
    attempts      integer NOT NULL DEFAULT 0
                  CONSTRAINT deliveries_attempts_check CHECK (attempts >= 0),
    due_at        timestamptz NOT NULL,
    claimed_until timestamptz,
    last_error    text,
    created_at    timestamptz NOT NULL,
    sent_at       timestamptz,
    CONSTRAINT deliveries_sent_has_time CHECK (state <> 'sent' OR sent_at IS NOT NULL)
);
CREATE INDEX deliveries_due_idx ON deliveries (due_at) WHERE state = 'pending';
CREATE INDEX deliveries_alert_id_idx ON deliveries (alert_id, created_at);
CREATE INDEX deliveries_dead_idx ON deliveries (created_at DESC) WHERE state = 'dead';

-- A destination that answered 410 Gone is disabled until an operator enables it again.
CREATE TABLE destination_state (
    destination     text PRIMARY KEY,
    disabled_at     timestamptz,
    disabled_reason text
);

-- What happened to an alert outside its call (escalation steps, deliveries, people acting):
-- with the call's timeline, the alert's whole story.
CREATE TABLE alert_log (
    id       bigserial PRIMARY KEY,
    alert_id uuid NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    at       timestamptz NOT NULL,
    kind     text NOT NULL CONSTRAINT alert_log_kind_check CHECK (kind <> ''),
    data     jsonb NOT NULL DEFAULT '{}'
             CONSTRAINT alert_log_data_check CHECK (jsonb_typeof(data) = 'object')
);
CREATE INDEX alert_log_alert_id_idx ON alert_log (alert_id, id);

-- Bearer tokens of the HTTP API: only a hash is kept; `read` lists and shows, `write` also
-- acknowledges, resolves and escalates.
CREATE TABLE api_tokens (
    id           uuid PRIMARY KEY,
    name         text NOT NULL UNIQUE CONSTRAINT api_tokens_name_check CHECK (name <> ''),
    token_hash   text NOT NULL UNIQUE,
    scope        text NOT NULL CONSTRAINT api_tokens_scope_check CHECK (scope IN ('read', 'write')),
    created_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    last_used_at timestamptz
);

-- migration: 0003 calls a restarted controller picks up again

-- The Stasis application that ran the call: a controller that restarts (or takes over) picks
-- up the unfinished calls of its own application, and only those.
ALTER TABLE calls ADD COLUMN app text;
CREATE INDEX calls_unfinished_idx ON calls (app) WHERE ended_at IS NULL;

-- A leg that ended while no controller was watching it (the controller was restarting):
-- Asterisk no longer has it, and nobody heard how it ended.
ALTER TABLE call_legs DROP CONSTRAINT call_legs_outcome_check;
ALTER TABLE call_legs ADD CONSTRAINT call_legs_outcome_check
    CHECK (outcome IN ('accepted', 'busy', 'no_answer', 'declined', 'failed',
                       'taken_by_other', 'abandoned', 'cancelled', 'unobserved'));

-- migration: 0004 web console: its users, and changes announced to whoever listens

-- People who sign in to the console. The password is an argon2 hash; `person` ties the
-- account to users[].id of the configuration (who then is the one who acknowledged).
-- failed_attempts counts wrong passwords in a row; locked_until stops sign-ins until then.
CREATE TABLE console_users (
    name                text PRIMARY KEY
                        CONSTRAINT console_users_name_check
                        CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$'),
    password_hash       text NOT NULL,
    role                text NOT NULL
                        CONSTRAINT console_users_role_check
                        CHECK (role IN ('viewer', 'responder', 'admin')),
    person              text,
    created_at          timestamptz NOT NULL,
    password_changed_at timestamptz NOT NULL,
    failed_attempts     integer NOT NULL DEFAULT 0,
    locked_until        timestamptz,
    last_sign_in_at     timestamptz
);

-- Every statement that changes a call, a leg, a timeline, an alert or a voicemail announces
-- its table on the channel `callrouting_changes`: consoles of every daemon on this database
-- listen and redraw. Per statement, and Postgres folds equal notifications of a transaction
-- into one, so a store writer's batch costs one notification per table.
CREATE FUNCTION callrouting_announce_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('callrouting_changes', TG_TABLE_NAME);
    RETURN NULL;
END
$$;
CREATE TRIGGER calls_announce AFTER INSERT OR UPDATE OR DELETE ON calls
    FOR EACH STATEMENT EXECUTE FUNCTION callrouting_announce_change();
CREATE TRIGGER call_legs_announce AFTER INSERT OR UPDATE OR DELETE ON call_legs
    FOR EACH STATEMENT EXECUTE FUNCTION callrouting_announce_change();
CREATE TRIGGER call_events_announce AFTER INSERT OR UPDATE OR DELETE ON call_events
    FOR EACH STATEMENT EXECUTE FUNCTION callrouting_announce_change();
CREATE TRIGGER alerts_announce AFTER INSERT OR UPDATE OR DELETE ON alerts
    FOR EACH STATEMENT EXECUTE FUNCTION callrouting_announce_change();
CREATE TRIGGER voicemails_announce AFTER INSERT OR UPDATE OR DELETE ON voicemails
    FOR EACH STATEMENT EXECUTE FUNCTION callrouting_announce_change();

-- The console's call log: newest first, all numbers or one, pages and exports walking the
-- same order (started_at DESC, then id) so neither sorts the whole table.
CREATE INDEX calls_started_at_idx ON calls (started_at DESC, id);
CREATE INDEX calls_did_started_at_idx ON calls (did, started_at DESC, id);
-- The live view: calls that ended a moment ago.
CREATE INDEX calls_ended_at_idx ON calls (ended_at);

-- migration: 0005 who drives an application's calls: a lease with a fencing number

-- One row per Stasis application. The daemon holding an unexpired lease drives the app's
-- calls; a standby takes the lease only once it has expired, by the database's clock (one
-- clock for every host), and each new holder gets a higher fencing number, which its writes
-- carry so that a holder that lost the lease (frozen, cut off) can do no harm.
-- handover_requested_at: an operator asked the holder to hand its calls to a standby.
CREATE TABLE controller_leases (
    app                   text PRIMARY KEY,
    holder                text NOT NULL,
    fencing               bigint NOT NULL CONSTRAINT controller_leases_fencing_check
                          CHECK (fencing > 0),
    acquired_at           timestamptz NOT NULL,
    renewed_at            timestamptz NOT NULL,
    expires_at            timestamptz NOT NULL,
    handover_requested_at timestamptz
);

-- Every daemon of an application says it is there, as active or standby, a few times a
-- second: the active one can tell whether a standby is present (and say so on /metrics).
CREATE TABLE controller_members (
    app        text NOT NULL,
    member     text NOT NULL,
    role       text NOT NULL CONSTRAINT controller_members_role_check
               CHECK (role IN ('active', 'standby')),
    version    text NOT NULL,
    started_at timestamptz NOT NULL,
    seen_at    timestamptz NOT NULL,
    PRIMARY KEY (app, member)
);

-- migration: 0006 caller screening: arrivals counted per caller and number, screened calls

-- Every call that reaches a number, screened or not. Rate limits per caller and floods per
-- number are counted here, so that every daemon on this database shares the counts.
-- caller_key: the caller ID in E.164, 'withheld', or the digits as they came.
CREATE TABLE call_arrivals (
    id         uuid PRIMARY KEY,
    did        text NOT NULL,
    caller_key text NOT NULL,
    arrived_at timestamptz NOT NULL
);
CREATE INDEX call_arrivals_caller_idx ON call_arrivals (did, caller_key, arrived_at);
CREATE INDEX call_arrivals_did_idx ON call_arrivals (did, arrived_at);

-- Whether a number is in flood mode (more new calls a minute than its threshold), and since
-- when it has been calm again: one row per number, shared by every daemon.
CREATE TABLE number_floods (
    did        text PRIMARY KEY,
    active     boolean NOT NULL,
    since      timestamptz,
    calm_since timestamptz,
    updated_at timestamptz NOT NULL
);

-- Calls that screening ended before any alert was opened: a blocked caller, a caller past
-- the rate limit, a wrong PIN, a flood. They page nobody, and are kept for whoever asks why a
-- caller never got through. alert_id: the caller's open alert a rate-limited call is
-- counted on.
CREATE TABLE screened_calls (
    id                uuid PRIMARY KEY,
    caller_channel_id text NOT NULL,
    did               text NOT NULL,
    number_name       text NOT NULL,
    caller_id         text,
    caller_key        text NOT NULL,
    verdict           text NOT NULL CONSTRAINT screened_calls_verdict_check
                      CHECK (verdict ~ '^[a-z][a-z0-9_]*$'),
    rule              text,
    alert_id          uuid REFERENCES alerts (id) ON DELETE SET NULL,
    -- What screening found, check by check (as on a call's timeline).
    detail            jsonb NOT NULL DEFAULT '{}',
    started_at        timestamptz NOT NULL
);
CREATE INDEX screened_calls_started_at_idx ON screened_calls (started_at DESC);
CREATE INDEX screened_calls_alert_id_idx ON screened_calls (alert_id) WHERE alert_id IS NOT NULL;

-- A caller who calls again while their alert is open: the call joins that alert (another row
-- in calls), and calls past the rate limit are counted on it (screened_calls.alert_id).
-- caller_key finds it.
ALTER TABLE alerts ADD COLUMN caller_key text;
CREATE INDEX alerts_open_caller_idx ON alerts (number_did, caller_key, created_at DESC)
    WHERE status <> 'resolved';
