//! Delivery tests: real receivers on 127.0.0.1, real SQLite and PostgreSQL.
