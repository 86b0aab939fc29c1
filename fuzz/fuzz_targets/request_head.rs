//! A request to the agent's listener, through the listener itself (hyper's parser, routing and
//! basic auth) over an in-memory connection: whatever arrives, the answer is HTTP/1.x or nothing.
#![no_main]
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use regtrust::agent::http::{AppState, Server, Web, HEAD_TIMEOUT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct World {
    rt: tokio::runtime::Runtime,
    server: Arc<Server>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let app = Arc::new(AppState {
            metrics: Arc::new(regtrust::metrics::Metrics::new().unwrap()),
            ready: Default::default(),
            status: Default::default(),
        });
        // Credentials, so that Authorization headers are decoded and checked (cheap cost 4).
        let cfg = regtrust::config::WebConfig {
            basic_auth_users: vec![("u".into(), bcrypt::hash("p", 4).unwrap())],
            ..Default::default()
        };
        let server = Server::new(app, Arc::new(Web::load(&cfg).unwrap()));
        World { rt, server }
    })
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    w.rt.block_on(async {
        let (mut client, conn) = tokio::io::duplex(data.len() + 64 * 1024);
        let server = w.server.clone();
        let task = tokio::spawn(async move {
            server
                .serve_io(conn, tokio::time::Instant::now() + HEAD_TIMEOUT)
                .await
        });
        let _ = client.write_all(data).await;
        let _ = client.shutdown().await;
        let mut answer = Vec::new();
        let _ = client.read_to_end(&mut answer).await;
        let _ = task.await;
        assert!(
            // HTTP/1.0 requests are answered in HTTP/1.0.
            answer.is_empty()
                || answer.starts_with(b"HTTP/1.1 ")
                || answer.starts_with(b"HTTP/1.0 "),
            "not an HTTP answer: {:?}",
            String::from_utf8_lossy(&answer[..answer.len().min(80)])
        );
    });
});
