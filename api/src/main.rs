use clap::Parser;
use redress_api::{
    admin,
    cli::{
        AdminCommand, CalendarCommand, Cli, ClientCommand, Command, HubAdminCommand,
        SigningKeyCommand, TenantCommand,
    },
    startup::Application,
};
use redress_shared::config::Settings;
use tokio_util::sync::CancellationToken;

// mimalloc instead of glibc malloc: allocation was a tenth of the API's CPU under load and
// glibc's per-thread arenas most of its resident memory (docs/PERFORMANCE.md). A global
// allocator can only be declared as a static.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Openapi => print!("{}", redress_api::openapi::document()),
        Command::Admin {
            command: AdminCommand::Keygen { out },
        } => {
            let kid = admin::keygen(&out)?;
            eprintln!("wrote {} (kid {kid})", out.display());
        }
        command => {
            let settings = Settings::load()?;
            redress_shared::telemetry::init(&settings.log);
            match command {
                Command::Migrate => {
                    // As the tables' owner; the serving processes connect as redress_app.
                    let applied =
                        redress_shared::db::migrate(settings.admin_database_url.expose()).await?;
                    eprintln!(
                        "applied {} migration(s): {}",
                        applied.len(),
                        applied.join(", ")
                    );
                    if let Some(role) = redress_shared::db::set_app_role_password(
                        settings.admin_database_url.expose(),
                        settings.database_url.expose(),
                    )
                    .await?
                    {
                        eprintln!("set the password of role {role} to the one in database_url");
                    }
                }
                Command::Admin {
                    command:
                        AdminCommand::Tenant {
                            command: TenantCommand::Create { name, template },
                        },
                } => {
                    let created = admin::create_tenant(
                        settings.admin_database_url.expose(),
                        &name,
                        template.as_deref(),
                    )
                    .await?;
                    println!("{}", serde_json::to_string(&created)?);
                }
                Command::Admin {
                    command:
                        AdminCommand::Calendar {
                            command:
                                CalendarCommand::LoadYear {
                                    calendar,
                                    year,
                                    file,
                                    source,
                                },
                        },
                } => {
                    let loaded = redress_api::calendar_admin::load_year(
                        settings.admin_database_url.expose(),
                        &calendar,
                        year,
                        &file,
                        source.as_deref(),
                    )
                    .await?;
                    println!("{}", serde_json::to_string(&loaded)?);
                }
                Command::Admin {
                    command: AdminCommand::SigningKey { command },
                } => match command {
                    SigningKeyCommand::Rotate { algorithm } => {
                        let rotated = admin::rotate_signing_key(&settings, algorithm).await?;
                        println!("{}", serde_json::to_string(&rotated)?);
                    }
                    SigningKeyCommand::List => {
                        let keys = admin::list_signing_keys(&settings).await?;
                        println!("{}", serde_json::to_string(&keys)?);
                    }
                },
                Command::Admin {
                    command: AdminCommand::Client { command },
                } => match command {
                    ClientCommand::RotateSecret {
                        client,
                        overlap_secs,
                    } => {
                        let rotated =
                            admin::rotate_client_secret(&settings, &client, overlap_secs).await?;
                        println!("{}", serde_json::to_string(&rotated)?);
                    }
                    ClientCommand::AddKey { client, jwk } => {
                        let added = admin::add_client_keys(&settings, &client, &jwk).await?;
                        println!("{}", serde_json::to_string(&added)?);
                    }
                    ClientCommand::ListKeys { client } => {
                        let keys = admin::list_client_keys(&settings, &client).await?;
                        println!("{}", serde_json::to_string(&keys)?);
                    }
                    ClientCommand::RemoveKey { client, kid } => {
                        admin::remove_client_key(&settings, &client, &kid).await?;
                        eprintln!("removed key {kid} of {client}");
                    }
                },
                Command::Admin {
                    command: AdminCommand::HubAdmin { command },
                } => {
                    let (client, grant) = match command {
                        HubAdminCommand::Grant { client } => (client, true),
                        HubAdminCommand::Revoke { client } => (client, false),
                    };
                    let scopes =
                        admin::set_hub_admin(settings.admin_database_url.expose(), &client, grant)
                            .await?;
                    println!(
                        "{}",
                        serde_json::json!({"client_id": client, "scopes": scopes})
                    );
                }
                _ => {
                    let shutdown = CancellationToken::new();
                    redress_shared::shutdown::cancel_on_signal(shutdown.clone());
                    let app = Application::build(settings, shutdown).await?;
                    tracing::info!(port = app.port(), "redress-api listening");
                    app.run_until_stopped().await?;
                }
            }
        }
    }
    Ok(())
}
