-- Short videos (UploadUGCVideo): FetchList flag 5 lists them newest first.
CREATE TABLE IF NOT EXISTS ugc_videos (
    userid     TEXT   NOT NULL,
    file_id    TEXT   NOT NULL,
    title      TEXT   NOT NULL,
    play_url   TEXT   NOT NULL,
    nickname   TEXT   NOT NULL,
    headpic    TEXT   NOT NULL,
    frontcover TEXT   NOT NULL,
    location   TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    -- Upload order: newest first, whatever the clock says.
    seq        BIGINT NOT NULL,
    PRIMARY KEY (userid, file_id)
);
CREATE INDEX IF NOT EXISTS ugc_videos_newest ON ugc_videos (seq);

-- ReportUser: one row per reporter and reported VJ; repeats count up.
CREATE TABLE IF NOT EXISTS reports (
    reporter   TEXT   NOT NULL,
    vj         TEXT   NOT NULL,
    times      BIGINT NOT NULL,
    last_at    BIGINT NOT NULL,
    PRIMARY KEY (reporter, vj)
);
CREATE INDEX IF NOT EXISTS reports_vj ON reports (vj);

-- ForbidLive: VJs who may not broadcast.
CREATE TABLE IF NOT EXISTS bans (
    userid     TEXT   NOT NULL PRIMARY KEY,
    banned_at  BIGINT NOT NULL
);

-- StopLVB (and a ban): the VJ's current broadcast was ended by an operator. Its push URLs
-- are refused and it cannot go online again until the VJ asks for a new broadcast.
CREATE TABLE IF NOT EXISTS stops (
    userid     TEXT   NOT NULL PRIMARY KEY,
    stopped_at BIGINT NOT NULL
);

-- Co-host (link-mic) streams: each user's latest, so a publish to it can be admitted and
-- a play URL of it signed while its push URL is valid.
CREATE TABLE IF NOT EXISTS linkmic_streams (
    userid     TEXT   NOT NULL PRIMARY KEY,
    stream     TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS linkmic_streams_stream ON linkmic_streams (stream);
