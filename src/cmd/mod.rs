//! One module per subcommand: read inputs, call the crypto core, print.

pub mod decode;
pub mod docs;
pub mod generate_jwt;
pub mod generate_key;
pub mod key;
pub mod proxy;
pub mod resign;
pub mod serve;
pub mod verify_jwt;
