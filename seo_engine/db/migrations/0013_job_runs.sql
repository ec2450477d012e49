-- Every CLI job that changes the page set (seed, generate, publish steps): when it ran, how
-- it ended and what it changed, for `seo-engine jobs`. Written by the CLI in two short
-- statements of their own (jobs.py), outside the job's transaction: a failed or
-- interrupted job is recorded too.
CREATE TABLE job_runs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job text NOT NULL,
    site text,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    outcome text NOT NULL DEFAULT 'running'
        CHECK (outcome IN ('running', 'ok', 'failed', 'interrupted')),
    summary text NOT NULL DEFAULT ''
);
CREATE INDEX job_runs_started ON job_runs (started_at DESC);
