//! The one composition root of a RealLive server: what `reallive-server`
//! and `reallive-nvr` both start.
//!
//! [`start`] bootstraps a data dir (the accounts database, the token
//! secret in `jwt.secret`, the first admin), starts the WebRTC relay,
//! builds the live-session shell (WebSocket signaling, WHIP, WHEP and the
//! NVR's local sources, in [`live`]) and binds the listener. [`Node::run`]
//! serves the API (`reallive-http`), the live routes and the web UI until a
//! shutdown token fires. An app adds its own routers with [`Node::merge`].
//!
//! - [`NodeOptions`]: what a node needs; [`NodeOptions::resolve`] merges a
//!   config file's `[server]` section under command-line values.
//! - [`NodeError`]: why a node could not start or stopped.
//! - [`accounts`]: the user chores a server's command line offers, on a
//!   data dir without a running node.
//!
//! # Threading
//!
//! Everything runs on the caller's tokio runtime. The relay owns its UDP
//! socket on one task; each live session is one task; nothing here blocks
//! a runtime worker (secret files are written on blocking threads).
//!
//! # Example
//!
//! ```no_run
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn demo() -> Result<(), reallive_node::NodeError> {
//! let opts = reallive_node::NodeOptions::new("./data", "127.0.0.1:8080".parse().unwrap());
//! let node = reallive_node::start(opts).await?;
//! if let Some(file) = node.first_admin_password_file() {
//!     eprintln!("the admin password is in {}", file.display());
//! }
//! node.run(CancellationToken::new()).await
//! # }
//! ```

#![warn(missing_docs)]

pub mod accounts;
pub mod live;
mod options;
mod server;

pub use options::{DEFAULT_DATA_DIR, DEFAULT_LISTEN, NodeFlags};
pub use server::{
    ADMIN_PASSWORD_FILE, FIRST_ADMIN, JWT_SECRET_FILE, Node, NodeError, NodeOptions, TlsSetting,
    open_accounts,
};

/// Opens the data dir, starts the relay and binds: a node ready to
/// [`run`](Node::run).
pub async fn start(options: NodeOptions) -> Result<Node, NodeError> {
    Node::bind(options).await
}
