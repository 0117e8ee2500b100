//! Command line of `redress-api`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "redress-api",
    version,
    about = "The Redress complaint-routing hub: HTTP API and administration"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API and its outbox relay (the default).
    Serve,
    /// Apply pending database migrations.
    Migrate,
    /// Administration.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Tenants (consumer organisations).
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Write a new Ed25519 signing key (PKCS#8 PEM).
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and its first client; prints {"tenant_id","client_id","client_secret"}.
    Create {
        #[arg(long)]
        name: String,
        /// Start from a template of routing data (e.g. cn-pos).
        #[arg(long)]
        template: Option<String>,
    },
}
