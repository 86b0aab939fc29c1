//! The agent's process signals: SIGHUP re-reads the config, SIGTERM and Ctrl-C stop it.
//!
//! Never does: anything but turn signals into the agent's commands and its shutdown.

/// SIGHUP (`systemctl reload`, `kill -HUP`) re-reads the config instead of killing the agent: the
/// handler is installed before the listener serves, so no SIGHUP that a caller could time after
/// `/healthz` answers hits the default action.
pub fn forward_hangups(cmds: tokio::sync::mpsc::Sender<super::Command>) {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::hangup()) {
        Ok(mut hup) => {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    tracing::info!("SIGHUP: re-reading the config");
                    if cmds.send(super::Command::Reload).await.is_err() {
                        break;
                    }
                }
            });
        }
        Err(e) => tracing::warn!(error = %e, "cannot handle SIGHUP; reload by restarting"),
    }
}

/// Resolves on SIGTERM (the kubelet, systemd) or Ctrl-C: the agent's shutdown signal.
pub async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
