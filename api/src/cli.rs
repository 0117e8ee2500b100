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
    /// Working-day calendars shared by every tenant.
    Calendar {
        #[command(subcommand)]
        command: CalendarCommand,
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

#[derive(Debug, Subcommand)]
pub enum CalendarCommand {
    /// Load (or replace) one year of a built-in calendar from a CSV file in the format of
    /// calendar/data/cn-mainland.csv (date,weekday,type,holiday_name,notice_year,
    /// gov_cn_notice_url; type `off` or `makeup_workday`). Prints a JSON summary.
    LoadYear {
        /// The calendar, e.g. cn-mainland.
        #[arg(long)]
        calendar: String,
        #[arg(long)]
        year: i32,
        #[arg(long)]
        file: PathBuf,
        /// Where the arrangement comes from (e.g. the notice URL), for rows that do not
        /// name it themselves.
        #[arg(long)]
        source: Option<String>,
    },
}
