-- Positions are assigned inside the writing transaction. SQLite has one writer, so transactions
-- commit in the order they assign positions and the log never shows a gap; the relay only reads
-- new events and publishes them, with no transaction of its own. Inserting an event advances the
-- last position and, for a MESSAGE, records the broadcast's position.
CREATE TRIGGER events_advance AFTER INSERT ON events
BEGIN
    UPDATE relay_state SET last_seq = NEW.seq WHERE id = 1;
    UPDATE broadcasts SET message_seq = NEW.seq WHERE id = NEW.broadcast_id AND NEW.kind = 'MESSAGE';
END;
