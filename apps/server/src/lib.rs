//! `reallive-server` as a library: [`run`] starts a node
//! (`reallive-node`: accounts, relay, live sessions, API and UI) and serves
//! until the shutdown token fires. The logic lives in the crates; this only
//! wires them.

use anyhow::Context as _;
use reallive_node::{Node, NodeOptions};
use tokio_util::sync::CancellationToken;

/// Serves until `shutdown` fires. `on_ready` gets the bound node before it
/// serves: its address and scheme, the relay's UDP address, a new
/// self-signed certificate's fingerprint and, on first start without a
/// given password, the file (mode 0600) the generated admin password is in.
pub async fn run(
    options: NodeOptions,
    shutdown: CancellationToken,
    on_ready: impl FnOnce(&Node),
) -> anyhow::Result<()> {
    let data_dir = options.data_dir.clone();
    let node = reallive_node::start(options)
        .await
        .with_context(|| format!("starting the server in {}", data_dir.display()))?;
    on_ready(&node);
    node.run(shutdown).await?;
    Ok(())
}
