//! Database errors. Each keeps the driver's `mysql::Error` as its source and is sorted by what
//! the caller should do with the work it was doing ([`Class`]), decided by the error's variant
//! and the server's error code, never by its text.

use std::fmt;

/// What a failed database operation means for the work it carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The database cannot be reached or dropped the connection (refused, reset, timed out,
    /// shutting down, too many connections, access denied, read-only): hold the work, retry
    /// with backoff, throw the connection away.
    Outage,
    /// The server gave up on this statement but will take it again (lock wait timeout,
    /// deadlock, a Galera certification conflict, an interrupted query): retry soon.
    Transient,
    /// The server refuses the values themselves (out of range, too long, not NULL, a bad
    /// JSON or constraint): retrying cannot help; only this row's work may be dropped.
    Refused,
    /// This node is no longer a member of the cluster (the others declared it dead): its
    /// work is dropped and it joins again.
    Fenced,
    /// Anything else the server or driver rejected (a missing table or column, a missing
    /// grant, a driver-side error): not about one row's values, so never a reason to drop
    /// work; held and retried with backoff until an operator fixes it.
    Rejected,
}

/// Why a database operation failed. Messages name the database (never the password) and what
/// was being done.
#[derive(Debug)]
pub enum Error {
    /// No connection could be made or checked out within `ConnectTimeout`.
    Connect {
        db: String,
        reason: String,
        source: Option<mysql::Error>,
    },
    /// A statement failed.
    Query { what: String, source: mysql::Error },
    /// The database holds no skypunch schema, or one this program cannot use.
    Schema(String),
    /// This node's row in `nodes` is gone or has another epoch.
    Fenced { node: String },
    /// The configuration names no usable account (the package's placeholders): nothing was
    /// tried, and waiting cannot help.
    Unconfigured(String),
    /// The row asked for does not decode (a value edited out of its column's range).
    Row(super::decode::BadRow),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Connect { db, reason, .. } => {
                write!(f, "cannot connect to database {db}: {reason}")
            }
            Error::Query { what, source } => {
                write!(f, "database error while {what}: {}", reason_of(source))
            }
            Error::Schema(msg) | Error::Unconfigured(msg) => f.write_str(msg),
            Error::Row(bad) => bad.fmt(f),
            Error::Fenced { node } => write!(
                f,
                "node {node} was declared dead by the other nodes (no heartbeat within \
                 DeadAfter), which took its targets over"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Connect { source, .. } => source.as_ref().map(|e| e as _),
            Error::Query { source, .. } => Some(source),
            Error::Schema(_) | Error::Fenced { .. } | Error::Unconfigured(_) | Error::Row(_) => {
                None
            }
        }
    }
}

impl Error {
    /// Builds a closure that wraps a driver error with what was being done.
    pub fn query(what: &str) -> impl Fn(mysql::Error) -> Error + '_ {
        move |source| Error::Query {
            what: what.to_string(),
            source,
        }
    }

    pub fn class(&self) -> Class {
        match self {
            Error::Connect { .. } => Class::Outage,
            Error::Query { source, .. } => classify(source),
            Error::Schema(_) | Error::Unconfigured(_) | Error::Row(_) => Class::Rejected,
            Error::Fenced { .. } => Class::Fenced,
        }
    }

    /// True when the database is unreachable (as opposed to a bad statement or value), so
    /// the caller should hold its work and retry.
    pub fn is_outage(&self) -> bool {
        self.class() == Class::Outage
    }
}

/// Sorts a driver error by its variant and, for the server's errors, by its code.
pub fn classify(e: &mysql::Error) -> Class {
    use mysql::DriverError as D;
    match e {
        mysql::Error::IoError(_) | mysql::Error::CodecError(_) => Class::Outage,
        mysql::Error::MySqlError(m) => server_class(m.code),
        mysql::Error::DriverError(
            D::ConnectTimeout
            | D::CouldNotConnect(_)
            | D::PacketOutOfSync
            | D::UnexpectedPacket
            | D::Timeout
            | D::SetupError
            | D::PoisonedPoolMutex,
        ) => Class::Outage,
        _ => Class::Rejected,
    }
}

/// Server error codes (MariaDB and MySQL) by what they mean for the work.
fn server_class(code: u16) -> Class {
    match code {
        // Client-side codes, in case a proxy relays them; too many connections; server
        // shutdown; network errors; aborted or killed connections; bad handshake; access
        // denied; unknown database; WSREP not ready (a Galera node out of the primary
        // component); read-only server; idle disconnect.
        2002
        | 2003
        | 2006
        | 2013
        | 2055
        | 1040
        | 1053
        | 1077
        | 1152
        | 1153..=1161
        | 1184
        | 1043
        | 1044
        | 1045
        | 1049
        | 1047
        | 1290
        | 1792
        | 1836
        | 1927
        | 4031 => Class::Outage,
        // Lock wait timeout; deadlock (also Galera's certification conflict); record changed;
        // errors during COMMIT/ROLLBACK; too many concurrent transactions; interrupted or
        // timed-out query; out of memory; a storage engine's passing error.
        1205 | 1213 | 1020 | 1180 | 1181 | 1637 | 1317 | 1969 | 3024 | 1037 | 1038 | 1041
        | 1030 => Class::Transient,
        // NULL into NOT NULL; duplicate key; out of range; truncated; incorrect value; too
        // long; BIGINT out of range; foreign key; invalid JSON; CHECK constraint; bad string.
        1048 | 1062 | 1264 | 1265 | 1292 | 1366 | 1367 | 1406 | 1690 | 1451 | 1452 | 3140
        | 4025 | 1300 => Class::Refused,
        _ => Class::Rejected,
    }
}

/// A driver error in words: the server's message and code, without the driver's wrapping.
pub fn reason_of(e: &mysql::Error) -> String {
    match e {
        mysql::Error::MySqlError(m) => format!("{} (error {})", m.message, m.code),
        mysql::Error::IoError(io) => format!("I/O error: {io}"),
        mysql::Error::CodecError(c) => format!("I/O error: {c}"),
        mysql::Error::DriverError(d) => format!("connection error: {d}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_common::proto::codec::error::PacketCodecError;
    use std::io;

    fn server(code: u16) -> mysql::Error {
        mysql::Error::MySqlError(mysql::MySqlError {
            state: "HY000".into(),
            message: format!("error {code}"),
            code,
        })
    }

    fn query(source: mysql::Error) -> Error {
        Error::query("writing check results")(source)
    }

    #[test]
    fn a_read_timeout_inside_the_codec_is_an_outage_not_a_refusal() {
        let e = query(mysql::Error::CodecError(PacketCodecError::Io(
            io::Error::new(
                io::ErrorKind::WouldBlock,
                "Resource temporarily unavailable",
            ),
        )));
        assert_eq!(e.class(), Class::Outage);
        assert!(e.is_outage());
        assert!(
            e.to_string().contains("Resource temporarily unavailable"),
            "{e}"
        );
    }

    #[test]
    fn broken_connections_are_outages() {
        for source in [
            mysql::Error::IoError(io::Error::from(io::ErrorKind::ConnectionReset)),
            mysql::Error::IoError(io::Error::from(io::ErrorKind::BrokenPipe)),
            mysql::Error::DriverError(mysql::DriverError::ConnectTimeout),
            mysql::Error::DriverError(mysql::DriverError::PacketOutOfSync),
            server(2006),
            server(2013),
            server(1040),
            server(1053),
            server(1927),
            server(1045),
        ] {
            assert_eq!(query(source).class(), Class::Outage);
        }
    }

    #[test]
    fn lock_waits_and_deadlocks_are_transient() {
        for code in [1205, 1213, 1180] {
            let e = query(server(code));
            assert_eq!(e.class(), Class::Transient, "{code}");
        }
    }

    #[test]
    fn only_bad_values_are_refused() {
        for code in [1264, 1406, 1690, 1048, 1366] {
            assert_eq!(query(server(code)).class(), Class::Refused, "{code}");
        }
        for code in [1146, 1054, 1142, 1064] {
            assert_eq!(query(server(code)).class(), Class::Rejected, "{code}");
        }
        let e = mysql::Error::DriverError(mysql::DriverError::MismatchedStmtParams(3, 2));
        assert_eq!(query(e).class(), Class::Rejected);
    }

    #[test]
    fn the_driver_error_stays_the_source() {
        use std::error::Error as _;
        let e = query(server(1213));
        let source = e.source().expect("a source");
        assert!(source.downcast_ref::<mysql::Error>().is_some());
    }
}
