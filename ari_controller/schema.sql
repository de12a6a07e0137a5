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
