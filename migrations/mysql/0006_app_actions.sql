-- Short videos (UploadUGCVideo): FetchList flag 5 lists them newest first.
CREATE TABLE IF NOT EXISTS ugc_videos (
    userid     VARCHAR(128)  NOT NULL,
    file_id    VARCHAR(128)  NOT NULL,
    title      VARCHAR(1024) NOT NULL,
    play_url   VARCHAR(2048) NOT NULL,
    nickname   VARCHAR(512)  NOT NULL,
    headpic    VARCHAR(2048) NOT NULL,
    frontcover VARCHAR(2048) NOT NULL,
    location   VARCHAR(512)  NOT NULL,
    created_at BIGINT        NOT NULL,
    -- Upload order: newest first, whatever the clock says.
    seq        BIGINT        NOT NULL,
    PRIMARY KEY (userid, file_id),
    KEY ugc_videos_newest (seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- ReportUser: one row per reporter and reported VJ; repeats count up.
CREATE TABLE IF NOT EXISTS reports (
    reporter   VARCHAR(128) NOT NULL,
    vj         VARCHAR(128) NOT NULL,
    times      BIGINT       NOT NULL,
    last_at    BIGINT       NOT NULL,
    PRIMARY KEY (reporter, vj),
    KEY reports_vj (vj)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- ForbidLive: VJs who may not broadcast.
CREATE TABLE IF NOT EXISTS bans (
    userid     VARCHAR(128) NOT NULL PRIMARY KEY,
    banned_at  BIGINT       NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- StopLVB (and a ban): the VJ's current broadcast was ended by an operator. Its push URLs
-- are refused and it cannot go online again until the VJ asks for a new broadcast.
CREATE TABLE IF NOT EXISTS stops (
    userid     VARCHAR(128) NOT NULL PRIMARY KEY,
    stopped_at BIGINT       NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Co-host (link-mic) streams: each user's latest, so a publish to it can be admitted and
-- a play URL of it signed while its push URL is valid.
CREATE TABLE IF NOT EXISTS linkmic_streams (
    userid     VARCHAR(128) NOT NULL PRIMARY KEY,
    stream     VARCHAR(255) NOT NULL,
    expires_at BIGINT       NOT NULL,
    UNIQUE KEY linkmic_streams_stream (stream)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Keys compare byte for byte, NO PAD, as in 0003.
SET @minilvb_nopad = (
    SELECT COLLATION_NAME FROM information_schema.COLLATIONS
    WHERE COLLATION_NAME IN ('utf8mb4_nopad_bin', 'utf8mb4_0900_bin')
    ORDER BY COLLATION_NAME = 'utf8mb4_nopad_bin' DESC
    LIMIT 1
);
SET @minilvb_sql = CONCAT('ALTER TABLE ugc_videos CONVERT TO CHARACTER SET utf8mb4 COLLATE ', @minilvb_nopad);
PREPARE minilvb_stmt FROM @minilvb_sql;
EXECUTE minilvb_stmt;
DEALLOCATE PREPARE minilvb_stmt;
SET @minilvb_sql = CONCAT('ALTER TABLE reports CONVERT TO CHARACTER SET utf8mb4 COLLATE ', @minilvb_nopad);
PREPARE minilvb_stmt FROM @minilvb_sql;
EXECUTE minilvb_stmt;
DEALLOCATE PREPARE minilvb_stmt;
SET @minilvb_sql = CONCAT('ALTER TABLE bans CONVERT TO CHARACTER SET utf8mb4 COLLATE ', @minilvb_nopad);
PREPARE minilvb_stmt FROM @minilvb_sql;
EXECUTE minilvb_stmt;
DEALLOCATE PREPARE minilvb_stmt;
SET @minilvb_sql = CONCAT('ALTER TABLE linkmic_streams CONVERT TO CHARACTER SET utf8mb4 COLLATE ', @minilvb_nopad);
PREPARE minilvb_stmt FROM @minilvb_sql;
EXECUTE minilvb_stmt;
DEALLOCATE PREPARE minilvb_stmt;
SET @minilvb_sql = CONCAT('ALTER TABLE stops CONVERT TO CHARACTER SET utf8mb4 COLLATE ', @minilvb_nopad);
PREPARE minilvb_stmt FROM @minilvb_sql;
EXECUTE minilvb_stmt;
DEALLOCATE PREPARE minilvb_stmt;
