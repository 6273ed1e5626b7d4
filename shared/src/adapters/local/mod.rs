//! The embedded host: everything under the project's state folder, no server needed.

mod env_secrets;
mod files;
mod sqlite_state;
mod terminal;

pub use env_secrets::EnvSecrets;
pub use files::FileObjectStore;
pub use sqlite_state::SqliteStateStore;
pub use terminal::TerminalNotifier;
