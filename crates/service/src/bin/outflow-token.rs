//! Prints a development JWT signed with `OUTFLOW_JWT_SECRET` (scripts/token).

use clap::Parser;
use outflow_service::auth::{JwtKeys, Role};
use secrecy::SecretString;

#[derive(Parser)]
#[command(about = "Mint a development bearer token for Outflow's write endpoints")]
struct Args {
    /// The customer id (the token's `sub`).
    #[arg(long)]
    sub: String,
    #[arg(long, value_parser = ["customer", "admin"], default_value = "customer")]
    role: String,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl: i64,
    #[arg(long, env = "OUTFLOW_JWT_SECRET", hide_env_values = true)]
    secret: String,
}

fn main() {
    let args = Args::parse();
    let role = if args.role == "admin" { Role::Admin } else { Role::Customer };
    println!("{}", JwtKeys::new(&SecretString::from(args.secret)).mint(&args.sub, role, args.ttl));
}
