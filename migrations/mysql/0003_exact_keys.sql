-- Keys compare byte for byte. utf8mb4_bin is a PAD SPACE collation: 'a ' = 'a', so a
-- userid, fileid or groupid with trailing spaces reached (and overwrote) another key's row.
-- A NO PAD binary collation is named utf8mb4_nopad_bin on MariaDB (10.2+) and
-- utf8mb4_0900_bin on MySQL (8.0.17+); neither server knows the other's name, so the
-- statements are built with whichever this server has, MariaDB's first. The server is
-- checked for one of them before this runs. Every value that fits under PAD SPACE keys is
-- also unique under NO PAD, so the conversion cannot fail on duplicates.
SET @minilvb_nopad = (
    SELECT COLLATION_NAME FROM information_schema.COLLATIONS
    WHERE COLLATION_NAME IN ('utf8mb4_nopad_bin', 'utf8mb4_0900_bin')
    ORDER BY COLLATION_NAME = 'utf8mb4_nopad_bin' DESC
    LIMIT 1
);

SET @minilvb_sql = CONCAT('ALTER TABLE rooms CONVERT TO CHARACTER SET utf8mb4 COLLATE ', @minilvb_nopad);
PREPARE minilvb_stmt FROM @minilvb_sql;
EXECUTE minilvb_stmt;
DEALLOCATE PREPARE minilvb_stmt;

SET @minilvb_sql = CONCAT('ALTER TABLE recordings CONVERT TO CHARACTER SET utf8mb4 COLLATE ', @minilvb_nopad);
PREPARE minilvb_stmt FROM @minilvb_sql;
EXECUTE minilvb_stmt;
DEALLOCATE PREPARE minilvb_stmt;

SET @minilvb_sql = CONCAT('ALTER TABLE room_state CONVERT TO CHARACTER SET utf8mb4 COLLATE ', @minilvb_nopad);
PREPARE minilvb_stmt FROM @minilvb_sql;
EXECUTE minilvb_stmt;
DEALLOCATE PREPARE minilvb_stmt;

SET @minilvb_sql = CONCAT('ALTER TABLE members CONVERT TO CHARACTER SET utf8mb4 COLLATE ', @minilvb_nopad);
PREPARE minilvb_stmt FROM @minilvb_sql;
EXECUTE minilvb_stmt;
DEALLOCATE PREPARE minilvb_stmt;

SET @minilvb_sql = CONCAT('ALTER TABLE users CONVERT TO CHARACTER SET utf8mb4 COLLATE ', @minilvb_nopad);
PREPARE minilvb_stmt FROM @minilvb_sql;
EXECUTE minilvb_stmt;
DEALLOCATE PREPARE minilvb_stmt;

SET @minilvb_sql = CONCAT('ALTER TABLE tokens CONVERT TO CHARACTER SET utf8mb4 COLLATE ', @minilvb_nopad);
PREPARE minilvb_stmt FROM @minilvb_sql;
EXECUTE minilvb_stmt;
DEALLOCATE PREPARE minilvb_stmt;
