//! The sandbox relay as its own small binary, for harness tests (the server runs the same code
//! as `managed-agents sandbox-relay`). Accepts `sandbox-relay` as its first argument too, so
//! both are invoked alike: `RELAY sandbox-relay --socket PATH --listen ADDR -- ARGV...`.

fn main() {
    let mut args = std::env::args_os().skip(1).peekable();
    if args.peek().is_some_and(|a| a == "sandbox-relay") {
        args.next();
    }
    std::process::exit(managed_agents_harness::door::relay::main(args));
}
