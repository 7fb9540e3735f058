-- Accounts: one row per registered user; the password as an argon2id PHC string.
-- Binary collation so userids compare exactly, as everywhere else.
CREATE TABLE IF NOT EXISTS users (
    userid        VARCHAR(128) NOT NULL PRIMARY KEY,
    password_hash VARCHAR(255) NOT NULL,
    created_at    BIGINT       NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Session tokens, stored only as the hex SHA-256 of the token. kind is 'access' or
-- 'refresh'; every token of one Login shares a family; state 0 active, 1 used (a rotated
-- refresh token), 2 revoked.
CREATE TABLE IF NOT EXISTS tokens (
    hash       CHAR(64)     NOT NULL PRIMARY KEY,
    userid     VARCHAR(128) NOT NULL,
    kind       VARCHAR(8)   NOT NULL,
    family     CHAR(32)     NOT NULL,
    expires_at BIGINT       NOT NULL,
    state      BIGINT       NOT NULL DEFAULT 0,
    created_at BIGINT       NOT NULL,
    KEY tokens_family (family),
    KEY tokens_expires_at (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
