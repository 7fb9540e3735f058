-- Members are only ever found by their primary key: store them in that key's B-tree
-- (WITHOUT ROWID) instead of a rowid table plus a separate key index, which halves the
-- work of the snapshot's bulk upserts.
CREATE TABLE members_by_key (
    vj       TEXT    NOT NULL,
    fileid   TEXT    NOT NULL,
    userid   TEXT    NOT NULL,
    epoch    BIGINT  NOT NULL,
    seq      BIGINT  NOT NULL,
    nickname TEXT    NOT NULL,
    headpic  TEXT    NOT NULL,
    PRIMARY KEY (vj, fileid, userid)
) WITHOUT ROWID;
INSERT INTO members_by_key SELECT vj, fileid, userid, epoch, seq, nickname, headpic FROM members;
DROP TABLE members;
ALTER TABLE members_by_key RENAME TO members;
