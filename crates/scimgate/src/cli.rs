//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{Flags, Secret};

/// scimgate: a multi-tenant SCIM 2.0 gateway.
#[derive(Debug, Parser)]
#[command(
    name = "scimgate",
    version,
    about = "scimgate: a multi-tenant SCIM 2.0 gateway",
    after_help = "Configuration: defaults < TOML file < SCIMGATE_<KEY> environment < flags; see docs/configuration.md."
)]
pub struct Cli {
    /// TOML configuration file (else $SCIMGATE_CONFIG; see docs/configuration.md).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Database URL, postgres://... or sqlite:... (default: SQLite in the data directory).
    ///
    /// Prefer SCIMGATE_DATABASE_URL_FILE for a URL with a password: command-line
    /// arguments are visible to other users through `ps`.
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,

    /// Directory of the embedded SQLite database (default ./data).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Machine-readable JSON output for operator commands.
    #[arg(long, global = true)]
    pub json: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything in one process: SCIM gateway, metrics, background tasks.
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage a tenant's SCIM bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// Options of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:8080; port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Base URL clients reach this server at, e.g. behind a reverse proxy.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
}

/// `tenant ...`.
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and its first scim:write token.
    Create {
        /// URL slug: lowercase letters, digits and '-'.
        slug: String,
        /// Display name (default: the slug).
        #[arg(long)]
        name: Option<String>,
        /// Tenant kind.
        #[arg(long, value_enum, default_value_t = KindArg::Standard)]
        kind: KindArg,
    },
    /// List tenants.
    List,
}

/// `token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a new token for a tenant; its secret is printed once.
    Issue {
        /// The tenant's slug.
        tenant: String,
        /// A label for the token (e.g. entra-prod).
        #[arg(long)]
        name: Option<String>,
        /// Scopes (repeat or comma-separate); default scim:write.
        #[arg(
            long = "scope",
            value_name = "SCOPE",
            value_enum,
            value_delimiter = ','
        )]
        scopes: Vec<ScopeArg>,
        /// Days until the token expires (default: never).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=36500))]
        expires_in_days: Option<u32>,
    },
    /// List a tenant's tokens (never their secrets).
    List {
        /// The tenant's slug.
        tenant: String,
    },
    /// Revoke a token.
    Revoke {
        /// The tenant's slug.
        tenant: String,
        /// The token's id (from `token list`).
        token_id: uuid::Uuid,
    },
}

/// Tenant kind on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// An ordinary tenant.
    Standard,
    /// An MSP super tenant that fans out to child tenants.
    Super,
}

impl From<KindArg> for store::TenantKind {
    fn from(kind: KindArg) -> Self {
        match kind {
            KindArg::Standard => store::TenantKind::Standard,
            KindArg::Super => store::TenantKind::Super,
        }
    }
}

/// Token scope on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScopeArg {
    /// Read and write the directory (what an IdP needs).
    #[value(name = "scim:write")]
    ScimWrite,
    /// Read the directory.
    #[value(name = "scim:read")]
    ScimRead,
}

impl From<ScopeArg> for store::Scope {
    fn from(scope: ScopeArg) -> Self {
        match scope {
            ScopeArg::ScimWrite => store::Scope::ScimWrite,
            ScopeArg::ScimRead => store::Scope::ScimRead,
        }
    }
}

impl Cli {
    /// The configuration values given as flags.
    pub fn flags(&self) -> Flags {
        let (listen, public_url) = match &self.command {
            Command::Serve(args) => (args.listen, args.public_url.clone()),
            _ => (None, None),
        };
        Flags {
            listen,
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone().map(Secret::new),
            public_url,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_after_subcommand() {
        let cli = Cli::try_parse_from([
            "scimgate",
            "tenant",
            "create",
            "acme",
            "--json",
            "--data-dir",
            "/d",
            "--kind",
            "super",
        ])
        .expect("parses");
        assert!(cli.json);
        assert_eq!(cli.flags().data_dir, Some(PathBuf::from("/d")));
        match cli.command {
            Command::Tenant(TenantCommand::Create { slug, kind, .. }) => {
                assert_eq!(slug, "acme");
                assert_eq!(kind, KindArg::Super);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn scopes_repeat_or_comma() {
        let cli = Cli::try_parse_from([
            "scimgate",
            "token",
            "issue",
            "acme",
            "--scope",
            "scim:read,scim:write",
            "--scope",
            "scim:read",
        ])
        .expect("parses");
        let Command::Token(TokenCommand::Issue { scopes, .. }) = cli.command else {
            panic!("not token issue");
        };
        assert_eq!(
            scopes,
            [ScopeArg::ScimRead, ScopeArg::ScimWrite, ScopeArg::ScimRead]
        );
    }

    #[test]
    fn serve_flags_become_config_flags() {
        let cli = Cli::try_parse_from([
            "scimgate",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--public-url",
            "https://scim.example.com",
        ])
        .expect("parses");
        let flags = cli.flags();
        assert_eq!(flags.listen, Some("127.0.0.1:0".parse().expect("addr")));
        assert_eq!(
            flags.public_url.as_deref(),
            Some("https://scim.example.com")
        );
    }
}
