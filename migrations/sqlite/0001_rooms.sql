-- Rooms: one per VJ; the current broadcast's descriptive fields.
CREATE TABLE IF NOT EXISTS rooms (
    userid       TEXT    NOT NULL PRIMARY KEY,
    epoch        BIGINT  NOT NULL,
    groupid      TEXT    NOT NULL,
    title        TEXT    NOT NULL,
    nickname     TEXT    NOT NULL DEFAULT '',
    headpic      TEXT    NOT NULL DEFAULT '',
    frontcover   TEXT    NOT NULL DEFAULT '',
    location     TEXT    NOT NULL DEFAULT '',
    stream       TEXT    NOT NULL,
    timestamp    BIGINT  NOT NULL,
    playurl      TEXT    NOT NULL DEFAULT '',
    hls_play_url TEXT    NOT NULL DEFAULT '',
    snapshot_url TEXT    NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS rooms_stream ON rooms (stream);

-- Recordings: one per (VJ, fileid); a copy of the broadcast's description.
CREATE TABLE IF NOT EXISTS recordings (
    vj           TEXT    NOT NULL,
    fileid       TEXT    NOT NULL,
    groupid      TEXT    NOT NULL DEFAULT '',
    title        TEXT    NOT NULL,
    nickname     TEXT    NOT NULL DEFAULT '',
    headpic      TEXT    NOT NULL DEFAULT '',
    frontcover   TEXT    NOT NULL DEFAULT '',
    location     TEXT    NOT NULL DEFAULT '',
    stream       TEXT    NOT NULL,
    timestamp    BIGINT  NOT NULL,
    playurl      TEXT    NOT NULL DEFAULT '',
    hls_play_url TEXT    NOT NULL DEFAULT '',
    snapshot_url TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (vj, fileid)
);
CREATE INDEX IF NOT EXISTS recordings_timestamp ON recordings (timestamp);

-- Counters and status of a live room (fileid '') or a recording, written by snapshots.
CREATE TABLE IF NOT EXISTS room_state (
    vj       TEXT    NOT NULL,
    fileid   TEXT    NOT NULL,
    epoch    BIGINT  NOT NULL,
    online   BIGINT  NOT NULL,
    likes    BIGINT  NOT NULL,
    views    BIGINT  NOT NULL,
    seen_at  BIGINT  NOT NULL,
    PRIMARY KEY (vj, fileid)
);
CREATE INDEX IF NOT EXISTS room_state_online ON room_state (online);

-- Members of a live room (fileid '') or a recording; rows of an older epoch are stale.
CREATE TABLE IF NOT EXISTS members (
    vj       TEXT    NOT NULL,
    fileid   TEXT    NOT NULL,
    userid   TEXT    NOT NULL,
    epoch    BIGINT  NOT NULL,
    seq      BIGINT  NOT NULL,
    nickname TEXT    NOT NULL,
    headpic  TEXT    NOT NULL,
    PRIMARY KEY (vj, fileid, userid)
);
