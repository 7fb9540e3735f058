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
    vj        TEXT NOT NULL,
    fileid    TEXT NOT NULL,
    recording TEXT NOT NULL,
    PRIMARY KEY (vj, fileid)
);
