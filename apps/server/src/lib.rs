//! `reallive-server` as a library: [`run`] starts a node
//! (`reallive-node`: accounts, relay, live sessions, API and UI) and serves
//! until the shutdown token fires. The logic lives in the crates; this only
//! wires them.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context as _;
use reallive_node::NodeOptions;
use tokio_util::sync::CancellationToken;

/// Serves until `shutdown` fires. `on_ready` gets the bound address, the
/// relay's UDP address and, on first start without a given password, the
/// file (mode 0600) the generated admin password is in.
pub async fn run(
    options: NodeOptions,
    shutdown: CancellationToken,
    on_ready: impl FnOnce(SocketAddr, Option<SocketAddr>, Option<&Path>),
) -> anyhow::Result<()> {
    let data_dir = options.data_dir.clone();
    let node = reallive_node::start(options)
        .await
        .with_context(|| format!("starting the server in {}", data_dir.display()))?;
    let rtc = node.live().map(|l| l.relay().local_addr());
    on_ready(node.local_addr()?, rtc, node.first_admin_password_file());
    node.run(shutdown).await?;
    Ok(())
}
