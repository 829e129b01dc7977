//! The memory tables over the PostgreSQL wire protocol, so psql, Grafana, Metabase or DBeaver
//! connect to a running pipeline as to a database.
//!
//! The protocol and the SQL dialect come from `datafusion-postgres` (pgwire + DataFusion), and
//! its `pg_catalog` (tables and functions clients use for introspection: `\dt`, `\d table`,
//! Grafana's table list) is registered over the same catalog, so what clients list is what
//! they can query. Tables are read live: each query sees the tables as of the last committed
//! epoch, the same rows `POST /sql` returns at that moment.
//!
//! Binds 127.0.0.1 unless told otherwise. With a password configured every connection must
//! give it (cleartext password authentication: put TLS or an SSH tunnel in front when the
//! endpoint leaves the machine); any user name is accepted.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::error::DataFusionError;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_postgres::DfSessionService;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_postgres::pgwire::api::auth::cleartext::CleartextPasswordAuthStartupHandler;
use datafusion_postgres::pgwire::api::auth::noop::NoopStartupHandler;
use datafusion_postgres::pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
};
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::{ConnectionManager, PgWireServerHandlers};
use datafusion_postgres::pgwire::error::PgWireResult;
use datafusion_postgres::pgwire::tokio::process_socket;
use tokio::net::TcpListener;

use crate::MemoryTables;

/// The catalog and schema clients see: `datafusion.public.<table>`.
pub const CATALOG: &str = "datafusion";
pub const SCHEMA: &str = "public";

/// The memory tables as a DataFusion schema whose tables are looked up at planning time, so
/// one long-lived session (what a pgwire connection keeps) always sees the latest epoch.
#[derive(Debug)]
struct LiveSchema {
    tables: MemoryTables,
}

#[async_trait]
impl SchemaProvider for LiveSchema {
    fn table_names(&self) -> Vec<String> {
        self.tables.names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        Ok(self
            .tables
            .snapshot_table(name)?
            .map(|t| Arc::new(t) as Arc<dyn TableProvider>))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.row_count(name).is_some()
    }
}

/// A session over the live tables with trendflow's SQL functions and PostgreSQL's
/// `pg_catalog` and `information_schema`.
pub fn pg_session(tables: &MemoryTables) -> Result<SessionContext, DataFusionError> {
    let config = SessionConfig::new()
        .with_information_schema(true)
        .with_default_catalog_and_schema(CATALOG, SCHEMA);
    let ctx = SessionContext::new_with_config(config);
    crate::functions::register(&ctx);
    let catalog = ctx
        .catalog(CATALOG)
        .ok_or_else(|| DataFusionError::Internal("no default catalog".into()))?;
    catalog.register_schema(
        SCHEMA,
        Arc::new(LiveSchema {
            tables: tables.clone(),
        }),
    )?;
    setup_pg_catalog(&ctx, CATALOG, EmptyContextProvider).map_err(|e| *e)?;
    Ok(ctx)
}

/// The one password every connection must give.
#[derive(Debug)]
struct FixedPassword(Arc<str>);

// Written out as `async_trait` expands it: the trait's `&LoginInfo` hides a lifetime that an
// `async fn` in this edition must name, and naming it changes the signature.
impl AuthSource for FixedPassword {
    #[allow(elided_lifetimes_in_paths)]
    fn get_password<'life0, 'life1, 'async_trait>(
        &'life0 self,
        _login: &'life1 LoginInfo,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = PgWireResult<Password>> + Send + 'async_trait>,
    >
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        let password = Password::new(None, self.0.as_bytes().to_vec());
        Box::pin(async move { Ok(password) })
    }
}

/// No authentication (loopback without a password).
struct OpenStartup(Arc<ConnectionManager>);

impl NoopStartupHandler for OpenStartup {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(self.0.clone())
    }
}

/// The handlers of one endpoint: DataFusion for queries, and the chosen startup handler.
struct Handlers<S> {
    queries: Arc<DfSessionService>,
    startup: Arc<S>,
}

impl<S: StartupHandler + 'static> PgWireServerHandlers for Handlers<S> {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.queries.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.queries.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }
}

/// Serves the tables on `listener` until the task is dropped. `password`: required from every
/// client when set.
pub async fn serve_pgwire(
    listener: TcpListener,
    tables: MemoryTables,
    password: Option<Arc<str>>,
) -> std::io::Result<()> {
    let ctx = pg_session(&tables).map_err(std::io::Error::other)?;
    let queries = Arc::new(DfSessionService::new(Arc::new(ctx)));
    let connections = Arc::new(ConnectionManager::new());
    match password {
        Some(p) => {
            let startup = CleartextPasswordAuthStartupHandler::new(
                FixedPassword(p),
                DefaultServerParameterProvider::default(),
            )
            .with_connection_manager(connections);
            accept(
                listener,
                Arc::new(Handlers {
                    queries,
                    startup: Arc::new(startup),
                }),
            )
            .await
        }
        None => {
            accept(
                listener,
                Arc::new(Handlers {
                    queries,
                    startup: Arc::new(OpenStartup(connections)),
                }),
            )
            .await
        }
    }
}

async fn accept<H: PgWireServerHandlers + Send + Sync>(
    listener: TcpListener,
    handlers: Arc<H>,
) -> std::io::Result<()> {
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "pgwire: accept failed");
                continue;
            }
        };
        let handlers = handlers.clone();
        tokio::spawn(async move {
            if let Err(e) = process_socket(socket, None, handlers).await {
                tracing::debug!(%peer, error = %e, "pgwire connection ended with an error");
            }
        });
    }
}
