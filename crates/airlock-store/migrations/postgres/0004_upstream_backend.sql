-- The upstream backend a run (or rollback) executes on, recorded with its
-- transaction id before the change runs: `<pid>@<backend_start epoch>`.
-- Recovery asks pg_stat_activity whether exactly that backend is still
-- connected, which a client cannot fake (an application_name it can).
ALTER TABLE requests ADD COLUMN run_backend TEXT;
ALTER TABLE requests ADD COLUMN rb_backend TEXT;
