-- The fencing token of each room: a node that activates a room bumps it in the same
-- transaction that reads the room, and every later write for the room is conditional on
-- it, so two servers on one database can never both write a room.
ALTER TABLE room_state ADD COLUMN fence BIGINT NOT NULL DEFAULT 0;
