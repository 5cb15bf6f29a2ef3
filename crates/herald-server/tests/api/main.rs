//! Herald's API end to end: a real server on port 0 per test, over HTTP and SSE, on SQLite and
//! (with `HERALD_TEST_POSTGRES_URL`) PostgreSQL. One test binary; one module per area.

mod auth;
mod console;
mod delivery;
mod hardening_input;
mod hardening_streams;
mod hostile;
mod lifecycle;
mod limits;
mod old_console;
mod outage;
mod streams;
mod tls;
mod validation;
