-- A broadcast's seen_at now means "the media server's last sign of life" (0: it sends
-- none, and the broadcast stays listed until it ends). Before, ChangeStatus set it too:
-- those values would take long broadcasts off the list, so they are forgotten here and a
-- media server that sends signs of life sets them again with its next one.
UPDATE room_state SET seen_at = 0;

-- Tencent sends one event per recorded format, each with its own file id: the files of one
-- broadcast become one recording. A file merged into another entry is kept here, so its
-- id still reaches that entry; start_time is what their overlap is measured with.
ALTER TABLE recordings ADD COLUMN start_time BIGINT NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS recording_files (
    vj        VARCHAR(128) NOT NULL,
    fileid    VARCHAR(128) NOT NULL,
    recording VARCHAR(128) NOT NULL,
    PRIMARY KEY (vj, fileid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Keys compare byte for byte, NO PAD, as in 0003.
SET @minilvb_nopad = (
    SELECT COLLATION_NAME FROM information_schema.COLLATIONS
    WHERE COLLATION_NAME IN ('utf8mb4_nopad_bin', 'utf8mb4_0900_bin')
    ORDER BY COLLATION_NAME = 'utf8mb4_nopad_bin' DESC
    LIMIT 1
);
SET @minilvb_sql = CONCAT('ALTER TABLE recording_files CONVERT TO CHARACTER SET utf8mb4 COLLATE ', @minilvb_nopad);
PREPARE minilvb_stmt FROM @minilvb_sql;
EXECUTE minilvb_stmt;
DEALLOCATE PREPARE minilvb_stmt;
