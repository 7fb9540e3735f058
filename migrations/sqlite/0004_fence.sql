-- The fencing token of each room (see the MySQL migration of the same number). An embedded
-- database has one server, so it stays 0 there; the column keeps both schemas alike.
ALTER TABLE room_state ADD COLUMN fence BIGINT NOT NULL DEFAULT 0;
