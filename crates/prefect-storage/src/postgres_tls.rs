//! No TLS to a PostgreSQL server on this machine unless the URL asks for it.
//!
//! sqlx, like libpq, defaults to `sslmode=prefer`: every connection negotiates TLS
//! when the server offers it. Over loopback or a Unix socket the bytes never leave
//! the machine, so TLS protects nothing there, yet it cost a handshake per
//! connection (190 ms of the server's start on an already migrated database,
//! measured with rustls) and the encryption of every message (7 % of PostgreSQL's
//! CPU under the lifecycle benchmark).
//!
//! So when the URL says nothing about TLS (no `ssl…` parameter) and `PGSSLMODE`
//! is unset, connections to a local server start without it. libpq's `allow` mode
//! does this (plain first, TLS if refused), but sqlx treats `allow` as `disable`,
//! so the fallback is ours: a server that accepts only TLS connections (`hostssl`
//! in `pg_hba.conf`) refuses the plain one with SQLSTATE 28000, and the pool is then
//! opened again with sqlx's default.

use std::net::IpAddr;

use sea_orm::sqlx::postgres::{PgConnectOptions, PgSslMode};
use sea_orm::{DbErr, RuntimeErr};

/// Whether `url` (a `postgres://` URL) leaves TLS to the defaults: no `sslmode`,
/// certificate or key parameter. Of the environment, sqlx reads `PGSSLMODE`.
pub(crate) fn url_leaves_tls_unset(url: &str, pgsslmode: Option<&str>) -> bool {
    if pgsslmode.is_some_and(|mode| !mode.is_empty()) {
        return false;
    }
    let query = url.split_once('?').map_or("", |(_, query)| query);
    !query.split('&').any(|pair| {
        let key = pair.split_once('=').map_or(pair, |(key, _)| key).to_ascii_lowercase();
        key.starts_with("ssl")
    })
}

/// Whether the options reach a server on this machine: a Unix socket or a loopback host.
pub(crate) fn is_local(options: &PgConnectOptions) -> bool {
    if options.get_socket().is_some() {
        return true;
    }
    let host = options.get_host().trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.starts_with('/') || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `options` without TLS when they reach a local server.
pub(crate) fn plain_if_local(options: PgConnectOptions) -> PgConnectOptions {
    if is_local(&options) { options.ssl_mode(PgSslMode::Disable) } else { options }
}

/// Whether connecting failed because the server refuses connections without TLS
/// (`invalid_authorization_specification`: no `pg_hba.conf` entry without encryption).
pub(crate) fn refused_without_tls(error: &DbErr) -> bool {
    let DbErr::Conn(RuntimeErr::SqlxError(error)) = error else {
        return false;
    };
    matches!(&**error, sea_orm::sqlx::Error::Database(db) if db.code().as_deref() == Some("28000"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(url: &str) -> PgConnectOptions {
        url.parse().expect("a PostgreSQL URL")
    }

    #[test]
    fn only_a_url_without_tls_settings_leaves_tls_to_us() {
        assert!(url_leaves_tls_unset("postgres://u@127.0.0.1:5432/db", None));
        assert!(url_leaves_tls_unset("postgres://u@127.0.0.1:5432/db?application_name=x", None));
        assert!(url_leaves_tls_unset("postgres://u@127.0.0.1:5432/db", Some("")));
        assert!(!url_leaves_tls_unset("postgres://u@127.0.0.1:5432/db?sslmode=prefer", None));
        assert!(!url_leaves_tls_unset("postgres://u@127.0.0.1/db?application_name=x&ssl-mode=require", None));
        assert!(!url_leaves_tls_unset("postgres://u@localhost/db?sslrootcert=/ca.pem", None));
        assert!(!url_leaves_tls_unset("postgres://u@localhost/db", Some("require")));
    }

    #[test]
    fn loopback_hosts_and_sockets_are_local() {
        for url in [
            "postgres://u@127.0.0.1/db",
            "postgres://u@localhost/db",
            "postgres://u@[::1]:5432/db",
            "postgres://u@127.0.0.2/db",
            "postgres:///db?host=/var/run/postgresql",
        ] {
            assert!(is_local(&options(url)), "{url}");
            assert!(matches!(plain_if_local(options(url)).get_ssl_mode(), PgSslMode::Disable), "{url}");
        }
        for url in ["postgres://u@db.example.com/db", "postgres://u@10.0.0.5/db"] {
            assert!(!is_local(&options(url)), "{url}");
            assert!(!matches!(plain_if_local(options(url)).get_ssl_mode(), PgSslMode::Disable), "{url}");
        }
    }
}
