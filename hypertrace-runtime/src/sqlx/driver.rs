//! What differs between the databases: the `db.system` value, the SQL dialect, where the connection
//! details are in the typed connect options, rows affected, and the error code to report.

use std::path::Path;

use sqlx::error::DatabaseError;
use sqlx::Connection;

use super::statement::Dialect;

mod sealed {
    pub trait Sealed {}
}

/// Where a pool connects, read from its typed connect options (never from a URL, which may hold a
/// password). The password is not read at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// The host name or address; for a Unix socket, the socket's path.
    pub host: String,
    /// `None` for a Unix socket.
    pub port: Option<u16>,
    /// The database connected to, when the options name one.
    pub database: Option<String>,
    /// The user name the connections log in with.
    pub user: String,
}

impl Endpoint {
    fn new(
        host: &str,
        port: u16,
        socket: Option<&Path>,
        database: Option<&str>,
        user: &str,
    ) -> Self {
        let (host, port) = match socket {
            Some(s) => (s.display().to_string(), None),
            None => (host.to_owned(), Some(port)),
        };
        Endpoint {
            host,
            port,
            database: database.map(str::to_owned),
            user: user.to_owned(),
        }
    }
}

/// A database whose sqlx driver `hypertrace::sqlx` instruments: PostgreSQL (feature
/// `sqlx-postgres`) and MySQL/MariaDB (feature `sqlx-mysql`). Sealed: implemented here only.
pub trait InstrumentedDatabase: sqlx::Database + sealed::Sealed {
    /// The `db.system` / `db.system.name` value.
    const SYSTEM: &'static str;
    #[doc(hidden)]
    const DIALECT: Dialect;

    /// Host, port, database and user of these connect options.
    fn endpoint(options: &<Self::Connection as Connection>::Options) -> Endpoint;

    /// Rows a statement inserted, updated or deleted (PostgreSQL: also rows a SELECT returned).
    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// `db.response.status_code`: the SQLSTATE (PostgreSQL), the error number (MySQL).
    fn status_code(err: &dyn DatabaseError) -> Option<String>;
}

#[cfg(feature = "sqlx-postgres")]
impl sealed::Sealed for sqlx::Postgres {}

#[cfg(feature = "sqlx-postgres")]
impl InstrumentedDatabase for sqlx::Postgres {
    const SYSTEM: &'static str = "postgresql";
    const DIALECT: Dialect = Dialect::Postgres;

    fn endpoint(o: &sqlx::postgres::PgConnectOptions) -> Endpoint {
        Endpoint::new(
            o.get_host(),
            o.get_port(),
            o.get_socket().map(|p| p.as_path()),
            o.get_database(),
            o.get_username(),
        )
    }

    fn rows_affected(result: &sqlx::postgres::PgQueryResult) -> u64 {
        result.rows_affected()
    }

    fn status_code(err: &dyn DatabaseError) -> Option<String> {
        err.code().map(|c| c.into_owned())
    }
}

#[cfg(feature = "sqlx-mysql")]
impl sealed::Sealed for sqlx::MySql {}

#[cfg(feature = "sqlx-mysql")]
impl InstrumentedDatabase for sqlx::MySql {
    // Also for MariaDB: the driver cannot tell them apart, and the Hypertrace backend knows only
    // "mysql" of the two.
    const SYSTEM: &'static str = "mysql";
    const DIALECT: Dialect = Dialect::MySql;

    fn endpoint(o: &sqlx::mysql::MySqlConnectOptions) -> Endpoint {
        Endpoint::new(
            o.get_host(),
            o.get_port(),
            o.get_socket().map(|p| p.as_path()),
            o.get_database(),
            o.get_username(),
        )
    }

    fn rows_affected(result: &sqlx::mysql::MySqlQueryResult) -> u64 {
        result.rows_affected()
    }

    /// The semantic conventions for MySQL name the error number (`1062`), which is finer than
    /// the SQLSTATE (`23000`); the SQLSTATE goes to `db.sqlstate`.
    fn status_code(err: &dyn DatabaseError) -> Option<String> {
        err.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .map(|e| e.number().to_string())
            .or_else(|| err.code().map(|c| c.into_owned()))
    }
}
