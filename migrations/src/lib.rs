//! scimgate's database schema, as sea-orm migrations that run on SQLite and
//! PostgreSQL. (Being written.)
