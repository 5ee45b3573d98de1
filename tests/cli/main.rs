//! jwkit's integration tests: one binary (it links once), one module per area. Every test runs
//! the real `jwkit` binary or the real library against real files.

mod captures;
mod crypto;
mod decode;
mod docs;
mod generate_jwt;
mod generate_key;
mod goreplay;
mod hostile;
mod http;
mod idp;
mod idp_modern;
mod idp_replicas;
mod idp_security;
mod jose;
mod jwe;
mod key;
mod layout;
mod pg;
mod proxy;
mod readme;
mod replicas;
mod resign;
mod seams;
mod serve;
mod serve_dropin;
mod store_records;
mod util;
mod verify_jwt;
