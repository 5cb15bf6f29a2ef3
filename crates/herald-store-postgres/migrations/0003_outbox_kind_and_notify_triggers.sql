-- The outbox row says what it holds (kind, broadcast), as the log does, so both backends append
-- events with one statement. Notifications come from triggers: the relay on every node wakes
-- for an outbox insert, the scheduler for a broadcast whose times (or status) changed, whatever
-- code wrote them.
ALTER TABLE outbox ADD COLUMN kind TEXT;
ALTER TABLE outbox ADD COLUMN broadcast_id BIGINT;

CREATE FUNCTION herald_notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('herald_outbox', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION herald_notify_outbox();

CREATE FUNCTION herald_notify_schedule() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('herald_schedule', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER broadcasts_schedule_notify AFTER INSERT OR UPDATE OF status ON broadcasts
    FOR EACH ROW WHEN (NEW.scheduled_at IS NOT NULL OR NEW.expires_at IS NOT NULL)
    EXECUTE FUNCTION herald_notify_schedule();
