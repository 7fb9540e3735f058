-- Rooms: one per VJ; the current broadcast's descriptive fields.
-- utf8mb4 everywhere so emoji nicknames round-trip; binary collation so ids compare exactly.
CREATE TABLE IF NOT EXISTS rooms (
    userid       VARCHAR(128)  NOT NULL PRIMARY KEY,
    epoch        BIGINT        NOT NULL,
    groupid      VARCHAR(128)  NOT NULL,
    title        VARCHAR(256)  NOT NULL,
    nickname     VARCHAR(128)  NOT NULL DEFAULT '',
    headpic      VARCHAR(1024) NOT NULL DEFAULT '',
    frontcover   VARCHAR(1024) NOT NULL DEFAULT '',
    location     VARCHAR(128)  NOT NULL DEFAULT '',
    stream       VARCHAR(255)  NOT NULL,
    timestamp    BIGINT        NOT NULL,
    playurl      VARCHAR(1024) NOT NULL DEFAULT '',
    hls_play_url VARCHAR(1024) NOT NULL DEFAULT '',
    snapshot_url VARCHAR(1024) NOT NULL DEFAULT '',
    UNIQUE KEY rooms_stream (stream)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS recordings (
    vj           VARCHAR(128)  NOT NULL,
    fileid       VARCHAR(128)  NOT NULL,
    groupid      VARCHAR(128)  NOT NULL DEFAULT '',
    title        VARCHAR(256)  NOT NULL,
    nickname     VARCHAR(128)  NOT NULL DEFAULT '',
    headpic      VARCHAR(1024) NOT NULL DEFAULT '',
    frontcover   VARCHAR(1024) NOT NULL DEFAULT '',
    location     VARCHAR(128)  NOT NULL DEFAULT '',
    stream       VARCHAR(255)  NOT NULL,
    timestamp    BIGINT        NOT NULL,
    playurl      VARCHAR(1024) NOT NULL DEFAULT '',
    hls_play_url VARCHAR(1024) NOT NULL DEFAULT '',
    snapshot_url VARCHAR(1024) NOT NULL DEFAULT '',
    PRIMARY KEY (vj, fileid),
    KEY recordings_timestamp (timestamp)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS room_state (
    vj       VARCHAR(128) NOT NULL,
    fileid   VARCHAR(128) NOT NULL,
    epoch    BIGINT       NOT NULL,
    online   BIGINT       NOT NULL,
    likes    BIGINT       NOT NULL,
    views    BIGINT       NOT NULL,
    seen_at  BIGINT       NOT NULL,
    PRIMARY KEY (vj, fileid),
    KEY room_state_online (online)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS members (
    vj       VARCHAR(128)  NOT NULL,
    fileid   VARCHAR(128)  NOT NULL,
    userid   VARCHAR(128)  NOT NULL,
    epoch    BIGINT        NOT NULL,
    seq      BIGINT        NOT NULL,
    nickname VARCHAR(128)  NOT NULL,
    headpic  VARCHAR(1024) NOT NULL,
    PRIMARY KEY (vj, fileid, userid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
