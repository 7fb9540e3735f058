-- Accounts: one row per registered user; the password as an argon2id PHC string.
CREATE TABLE IF NOT EXISTS users (
    userid        TEXT    NOT NULL PRIMARY KEY,
    password_hash TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL
);

-- Session tokens, stored only as the hex SHA-256 of the token. kind is 'access' or
-- 'refresh'; every token of one Login shares a family; state 0 active, 1 used (a rotated
-- refresh token), 2 revoked.
CREATE TABLE IF NOT EXISTS tokens (
    hash       TEXT    NOT NULL PRIMARY KEY,
    userid     TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    family     TEXT    NOT NULL,
    expires_at BIGINT  NOT NULL,
    state      BIGINT  NOT NULL DEFAULT 0,
    created_at BIGINT  NOT NULL
);
-- Revoking a family, and purging expired tokens.
CREATE INDEX IF NOT EXISTS tokens_family ON tokens (family);
CREATE INDEX IF NOT EXISTS tokens_expires_at ON tokens (expires_at);
