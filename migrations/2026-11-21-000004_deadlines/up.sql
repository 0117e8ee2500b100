-- Deadlines (CONTRACT §4): calendars added as data, SLA policies, and the clocks that run
-- on each rung of a complaint.

-- A tenant's own working-day calendars. Each starts from a built-in calendar (its known
-- years and official days) and adds the tenant's closures and extra working days.
CREATE TABLE calendars (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    id          TEXT NOT NULL,
    name        TEXT NOT NULL,
    base        TEXT NOT NULL CHECK (base IN ('cn-mainland', 'weekdays')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

-- Years added to a built-in calendar after the build (a new State Council notice is data,
-- not code). A year listed here is known even if the notice changed no day of it.
CREATE TABLE calendar_years (
    calendar_id  TEXT NOT NULL,
    year         INTEGER NOT NULL,
    source       TEXT,
    loaded_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (calendar_id, year)
);

-- Single days that differ from the Monday–Friday rule. tenant_id NULL: a built-in
-- calendar's added years (see calendar_years); otherwise a tenant calendar's own days.
CREATE TABLE calendar_days (
    id           BIGSERIAL PRIMARY KEY,
    calendar_id  TEXT NOT NULL,
    tenant_id    TEXT REFERENCES tenants (id),
    date         DATE NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('rest', 'working')),
    name         TEXT,
    source       TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- MATCH SIMPLE skips the check when tenant_id is NULL (a built-in's day).
    FOREIGN KEY (tenant_id, calendar_id) REFERENCES calendars (tenant_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX calendar_days_builtin ON calendar_days (calendar_id, date)
    WHERE tenant_id IS NULL;
CREATE UNIQUE INDEX calendar_days_tenant ON calendar_days (tenant_id, calendar_id, date)
    WHERE tenant_id IS NOT NULL;

-- SLA policies, referenced by code from routing data. The validated policy document is
-- kept whole; a clock copies what it needs when it starts, so editing a policy never moves
-- a deadline that is already running.
CREATE TABLE sla_policies (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    code        TEXT NOT NULL,
    body        JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, code)
);

-- One clock (acknowledge or respond) of one rung of one complaint.
CREATE TABLE sla_clocks (
    id             BIGSERIAL PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    complaint_id   TEXT NOT NULL REFERENCES complaints (id),
    channel        TEXT NOT NULL,
    track          TEXT NOT NULL,
    clock          TEXT NOT NULL CHECK (clock IN ('acknowledge', 'respond')),
    -- running | paused | met | breached as in CONTRACT §4, plus cancelled (its rung was
    -- left before the clock ended) and unscheduled (the calendar does not know the
    -- start's year yet; loading the year schedules it).
    state          TEXT NOT NULL CHECK (state IN
                   ('running', 'paused', 'met', 'breached', 'cancelled', 'unscheduled')),
    -- What the clock counts, copied from the SLA policy when it started (policy code,
    -- calendar, time zone, roll-forward, on-breach action, warning point, target and its
    -- extension ceiling, start), so editing a policy never moves a running deadline.
    spec           JSONB NOT NULL,
    -- Where it stands: what is counted from when (the start and the whole target, or the
    -- last resume and what was left at the pause, plus extensions), the warning point,
    -- the remainder while paused, and when it warned, breached or was met.
    progress       JSONB NOT NULL,
    due_on         DATE,
    due_at         TIMESTAMPTZ,
    -- When the scheduler must next look at this clock (warning, then breach); NULL unless
    -- running.
    next_fire_at   TIMESTAMPTZ,
    -- A scheduler claims due clocks with a lease and commits at once, so no transaction
    -- is held while it works; an expired lease means the claimer died.
    claimed_until  TIMESTAMPTZ,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- The scheduler's only question, "what is due now?", reads this index and nothing else;
-- clocks that are not running are not in it at all, so it stays small and a pass with
-- nothing due touches one index page.
CREATE INDEX sla_clocks_due ON sla_clocks (next_fire_at) WHERE state = 'running';
CREATE INDEX sla_clocks_complaint ON sla_clocks (complaint_id, id);
-- At most one live clock of a kind per rung.
CREATE UNIQUE INDEX sla_clocks_live ON sla_clocks (complaint_id, track, channel, clock)
    WHERE state IN ('running', 'paused', 'unscheduled');
CREATE INDEX sla_clocks_unscheduled ON sla_clocks (id) WHERE state = 'unscheduled';
