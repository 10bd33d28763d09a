//! Run the mock model server standalone (what `managed-agents mock-model` does):
//!
//! `cargo run -p managed-agents-harness --example mock_model -- 127.0.0.1:8089 [script.jsonl]`
//!
//! Then e.g. `curl -s localhost:8089/v1/messages -d '{"model":"m","max_tokens":10,"stream":true,
//! "messages":[{"role":"user","content":"[[mock:text hello world]]"}]}'`.

use std::net::SocketAddr;
use std::path::PathBuf;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:8089").parse()?;
    let script = args.next().map(PathBuf::from);
    managed_agents_harness::mock_model::run(listen, script.as_deref()).await?;
    Ok(())
}
