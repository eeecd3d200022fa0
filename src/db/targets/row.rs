//! The one shape of a `targets` row, whoever reads it (the loader thread, the writer's store
//! thread, the HTTP handler threads, the CLI): the type, its one decoder (of the columns
//! `columns.rs` lists), the repairs and the result state it holds, and the figures the faces
//! derive from it. Plain data; no I/O.

use mysql::Row;

use super::super::decode::{self, BadRow, Fields, Fix};
use super::columns::{place, position, Read, COUNTERS, NO_TRACE};
use crate::base::model::{Status, TargetId, TargetState};
use crate::base::phases::Phases;
use crate::base::state::Counts;

/// A `targets` row as stored, with its open incident, before validation. Values the operator
/// may have left NULL or out of range are kept as they are so that validation can name them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetRow {
    pub id: TargetId,
    pub name: String,
    pub tenantid: String,
    pub status: String,
    pub status_description: Option<String>,
    pub previous_status: String,
    /// `YYYY-MM-DD HH:MM:SS` UTC.
    pub last_updated: String,
    /// As written: it may hold a password or a token (see [`TargetRow::shown_url`]).
    pub url: String,
    pub method: String,
    pub authn: String,
    /// `None` unless the read takes it ([`Read`]).
    pub authn_parms: Option<String>,
    pub pass_result: i64,
    pub frequency: i64,
    pub timeout: i64,
    pub pass_count: i64,
    pub fail_count: i64,
    pub count200: i64,
    pub count300: i64,
    pub count400: i64,
    pub count500: i64,
    pub network_fails: i64,
    pub repeated_fails: i64,
    pub enabled: bool,
    pub request_body: Option<String>,
    pub content_type: Option<String>,
    pub expect_body: Option<String>,
    pub max_response_ms: Option<i64>,
    pub follow_redirects: bool,
    pub verify_tls: bool,
    pub fail_threshold: i64,
    pub alerted: bool,
    pub last_http_status: Option<i64>,
    pub last_response_ms: Option<i64>,
    /// `None` unless the read takes it ([`Read`]).
    pub last_trace: Option<String>,
    /// `config_changed` in microseconds since the epoch.
    pub revision: i64,
    /// Moved on by one with every result written; as stored (see [`TargetRow::fixes`]).
    pub state_seq: i64,
    pub success_threshold: i64,
    pub repeated_passes: i64,
    pub realert_minutes: i64,
    /// `last_alerted` in milliseconds since the epoch.
    pub last_alerted_ms: Option<i64>,
    pub ca_file: Option<String>,
    pub cert_warn_days: i64,
    /// `cert_expires_at`, `YYYY-MM-DD HH:MM:SS` UTC.
    pub cert_expires_at: Option<String>,
    pub cert_issuer: Option<String>,
    /// `cert_alerted_for` in seconds since the epoch.
    pub cert_alerted_for: Option<i64>,
    pub group_name: Option<String>,
    pub public: bool,
    /// PEM files of the client certificate and its key (mutual TLS).
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    /// As written: it may hold a proxy password (see [`crate::base::proxy::ProxyUrl`]).
    pub proxy_url: Option<String>,
    /// `any`, `4` or `6` as written.
    pub ip_family: String,
    /// As written: `targets ID` and the API's answer for the target show it,
    /// `target::from_row` parses it.
    pub conditions: Option<String>,
    /// As written, `${secret:NAME}` references and all (shown as [`crate::base::headers::shown`]
    /// makes it).
    pub request_headers: Option<String>,
    /// The open incident's start, in milliseconds since the epoch, and its latest reason.
    pub incident_started_ms: Option<i64>,
    pub incident_reason: Option<String>,
    /// The target this one depends on, as stored (the loader checks it names a target).
    pub depends_on: Option<i64>,
    /// Why the open incident's FAILURE alert is held (`parent db is down`), when it is.
    pub held: Option<String>,
    /// A PUSH target's secret: shown whole by `targets ID` only, masked elsewhere
    /// ([`crate::base::push::masked`]).
    pub push_token: Option<String>,
    /// The last check's phases; `None` when it sent no request, or for a value that does not
    /// read (see [`Phases::parse`]).
    pub last_phases: Option<Phases>,
    /// For the loader: the row does not decode, and why; it then holds only its id, revision
    /// and status. Its config error.
    pub undecodable: Option<BadRow>,
}

/// Column `name` of the row, read with `Fields::$how` when the read's `$mask` takes it, its
/// type's default otherwise.
macro_rules! at {
    ($f:ident . $how:ident ($name:literal), $mask:ident) => {{
        const I: usize = position($name);
        if $mask & (1 << I) == 0 {
            Ok(Default::default())
        } else {
            $f.$how(place($mask, I), $name)
        }
    }};
}

impl TargetRow {
    /// Decodes a row read with [`select`] for `read`. Daemon-owned values out of range decode
    /// as they are: [`TargetRow::fixes`] says how to repair them.
    pub fn decode(f: &mut Fields, read: Read) -> Result<TargetRow, BadRow> {
        let m = read.mask();
        Ok(TargetRow {
            id: at!(f.id("id"), m)?,
            name: at!(f.get("name"), m)?,
            tenantid: at!(f.get("tenantid"), m)?,
            status: at!(f.get("status"), m)?,
            status_description: at!(f.opt("status_description"), m)?,
            previous_status: at!(f.get("previous_status"), m)?,
            last_updated: at!(f.opt("last_updated"), m)?.unwrap_or_default(),
            url: at!(f.get("url"), m)?,
            method: at!(f.get("method"), m)?,
            authn: at!(f.get("authn"), m)?,
            authn_parms: at!(f.secret("authn_parms"), m)?,
            pass_result: at!(f.get("pass_result"), m)?,
            frequency: at!(f.get("frequency"), m)?,
            timeout: at!(f.get("timeout"), m)?,
            pass_count: at!(f.get("pass_count"), m)?,
            fail_count: at!(f.get("fail_count"), m)?,
            count200: at!(f.get("count200"), m)?,
            count300: at!(f.get("count300"), m)?,
            count400: at!(f.get("count400"), m)?,
            count500: at!(f.get("count500"), m)?,
            network_fails: at!(f.get("network_fails"), m)?,
            repeated_fails: at!(f.get("repeated_fails"), m)?,
            enabled: at!(f.flag("enabled"), m)?,
            request_body: at!(f.secret("request_body"), m)?,
            content_type: at!(f.opt("content_type"), m)?,
            expect_body: at!(f.opt("expect_body"), m)?,
            max_response_ms: at!(f.opt("max_response_ms"), m)?,
            follow_redirects: at!(f.flag("follow_redirects"), m)?,
            verify_tls: at!(f.flag("verify_tls"), m)?,
            fail_threshold: at!(f.get("fail_threshold"), m)?,
            alerted: at!(f.flag("alerted"), m)?,
            last_http_status: at!(f.opt("last_http_status"), m)?,
            last_response_ms: at!(f.opt("last_response_ms"), m)?,
            last_trace: at!(f.opt("last_trace"), m)?,
            revision: at!(f.opt("config_changed"), m)?.unwrap_or_default(),
            state_seq: at!(f.get("state_seq"), m)?,
            success_threshold: at!(f.get("success_threshold"), m)?,
            repeated_passes: at!(f.get("repeated_passes"), m)?,
            realert_minutes: at!(f.get("realert_minutes"), m)?,
            last_alerted_ms: at!(f.opt("last_alerted"), m)?,
            ca_file: at!(f.opt("ca_file"), m)?,
            cert_warn_days: at!(f.get("cert_warn_days"), m)?,
            cert_expires_at: at!(f.opt("cert_expires_at"), m)?,
            cert_issuer: at!(f.opt("cert_issuer"), m)?,
            cert_alerted_for: at!(f.opt("cert_alerted_for"), m)?,
            group_name: at!(f.opt("group_name"), m)?,
            public: at!(f.flag("public"), m)?,
            client_cert: at!(f.opt("client_cert"), m)?,
            client_key: at!(f.opt("client_key"), m)?,
            proxy_url: at!(f.secret("proxy_url"), m)?,
            ip_family: at!(f.get("ip_family"), m)?,
            conditions: at!(f.opt("conditions"), m)?,
            request_headers: at!(f.secret("request_headers"), m)?,
            incident_started_ms: at!(f.opt("incident_started"), m)?,
            incident_reason: at!(f.opt("incident_reason"), m)?,
            depends_on: at!(f.opt("depends_on"), m)?,
            held: at!(f.opt("held"), m)?,
            push_token: at!(f.secret("push_token"), m)?,
            last_phases: at!(f.opt("last_phases"), m)?.and_then(|p: Vec<u8>| Phases::parse(&p)),
            undecodable: None,
        })
    }

    /// [`TargetRow::decode`] of [`Read::NoTrace`] for the loader: a row with a usable id that
    /// does not decode comes back holding only its id, revision, status and what is wrong, to
    /// become a config error like any row that does not validate.
    pub fn load(f: &mut Fields) -> Result<TargetRow, BadRow> {
        let at = |name| place(NO_TRACE, position(name));
        let revision = f.peek::<i64>(at("config_changed")).unwrap_or_default();
        let status = f.peek::<String>(at("status")).unwrap_or_default();
        let status_description = f.peek::<String>(at("status_description"));
        let bad = match TargetRow::decode(f, Read::NoTrace) {
            Ok(row) => return Ok(row),
            Err(bad) => bad,
        };
        let Some(id) = bad.usable_id() else {
            return Err(bad);
        };
        Ok(TargetRow {
            id,
            revision,
            status,
            status_description,
            enabled: true,
            undecodable: Some(bad),
            ..TargetRow::default()
        })
    }

    /// The daemon-owned values a person edited out of range, and what they are repaired to.
    pub fn fixes(&self) -> Vec<Fix> {
        let counters = COUNTERS.into_iter().zip(self.counters()).chain([
            ("repeated_fails", self.repeated_fails),
            ("repeated_passes", self.repeated_passes),
        ]);
        decode::counter_fix("state_seq", self.state_seq)
            .into_iter()
            .chain(counters.filter_map(|(c, n)| decode::counter_fix(c, n)))
            .collect()
    }

    /// The counters as stored, in [`COUNTERS`] order.
    fn counters(&self) -> [i64; 7] {
        [
            self.pass_count,
            self.fail_count,
            self.count200,
            self.count300,
            self.count400,
            self.count500,
            self.network_fails,
        ]
    }

    /// The repairs of the result state alone: what the writer's read repairs, leaving the
    /// counters, which a write may add to meanwhile, to the loader.
    pub fn state_fixes(&self) -> Vec<Fix> {
        let state = ["state_seq", "repeated_fails", "repeated_passes"];
        let mut fixes = self.fixes();
        fixes.retain(|f| state.contains(&f.column));
        fixes
    }

    /// The result state the row holds: what the writer starts from the first time it writes
    /// the target. Values edited out of range are taken as their repairs (see
    /// [`TargetRow::fixes`]).
    pub fn state(&self) -> TargetState {
        let fixes = self.fixes();
        let now = |column: &str, was: i64| decode::repaired(&fixes, column, was) as u64;
        TargetState {
            status: Status::parse(&self.status),
            repeated_fails: now("repeated_fails", self.repeated_fails),
            alerted: self.alerted,
            repeated_passes: now("repeated_passes", self.repeated_passes),
            last_alerted_ms: self.last_alerted_ms,
            seq: now("state_seq", self.state_seq),
            cert_alerted_for: self.cert_alerted_for,
        }
    }

    /// `status_description`, empty when NULL.
    pub fn description(&self) -> &str {
        self.status_description.as_deref().unwrap_or("")
    }

    /// Whether the description is a config error the loader wrote (the row is not checked).
    pub fn config_error(&self) -> bool {
        self.description().starts_with("config error:")
    }

    /// The URL's display form: no user info, secret parameters masked.
    pub fn shown_url(&self) -> String {
        crate::base::urls::shown(&self.url)
    }

    /// `group_name`, when it names one.
    pub fn group(&self) -> Option<&str> {
        self.group_name.as_deref().filter(|g| !g.is_empty())
    }

    /// When the last result was written, in milliseconds since the epoch.
    pub fn last_updated_ms(&self) -> Option<i64> {
        utc_seconds(&self.last_updated).map(|s| s * 1000)
    }

    /// When the certificate a check last saw expires, in seconds since the epoch.
    pub fn cert_expires_s(&self) -> Option<i64> {
        self.cert_expires_at.as_deref().and_then(utc_seconds)
    }

    /// The counters, a value below zero (a hand edit) taken as 0.
    pub fn counts(&self) -> Counts {
        let [pass, fail, c200, c300, c400, c500, network] =
            self.counters().map(|v| u64::try_from(v).unwrap_or(0));
        Counts {
            pass,
            fail,
            c200,
            c300,
            c400,
            c500,
            network,
        }
    }
}

/// Decodes a row read with [`select`] for `read`; one that does not decode is reported (see
/// [`decode::skip`]) and left out.
pub fn decoded(read: Read, row: Row) -> Option<TargetRow> {
    TargetRow::decode(&mut Fields::new(super::TABLE, row), read)
        .map_err(|bad| decode::skip(&bad))
        .ok()
}

/// Seconds since the epoch of a `YYYY-MM-DD HH:MM:SS` UTC time as the columns read (the
/// fixed shape `DATE_FORMAT` gives); `None` for anything else, the zero date included. By
/// hand, not with a format string: `/metrics` reads one per target.
fn utc_seconds(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let shape = b.len() == 19 && b[4] == b'-' && b[7] == b'-' && b[10] == b' ';
    if !shape || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let n = |from: usize, to: usize| text.get(from..to)?.parse::<u32>().ok();
    let date = chrono::NaiveDate::from_ymd_opt(n(0, 4)? as i32, n(5, 7)?, n(8, 10)?)?;
    let time = date.and_hms_opt(n(11, 13)?, n(14, 16)?, n(17, 19)?)?;
    Some(time.and_utc().timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql::Value;

    /// A row as `read` selects it, all NULL but `values`.
    fn row_of(read: Read, values: &[(&str, Value)]) -> Fields {
        let mask = read.mask();
        let mut row = vec![Some(Value::NULL); mask.count_ones() as usize];
        for (name, value) in values {
            row[place(mask, position(name))] = Some(value.clone());
        }
        Fields::of(super::super::TABLE, row)
    }

    /// A row of the loader's read, all NULL but id, status and revision.
    fn fields(id: i64) -> Fields {
        let status = Value::Bytes(b"PASS".to_vec());
        let values = [
            ("id", Value::Int(id)),
            ("status", status),
            ("config_changed", Value::Int(1234)),
        ];
        row_of(Read::NoTrace, &values)
    }

    #[test]
    fn a_row_with_a_usable_id_that_does_not_decode_comes_back_as_its_config_error() {
        let row = TargetRow::load(&mut fields(5)).unwrap();
        assert_eq!(
            (row.id, row.revision, row.status.as_str()),
            (5, 1234, "PASS")
        );
        assert_eq!(
            row.undecodable.map(|bad| bad.problem()).as_deref(),
            Some("name: NULL is not UTF-8 text")
        );
        let bad = TargetRow::load(&mut fields(-1)).unwrap_err();
        assert_eq!(bad.to_string(), "targets row with id -1: ids are positive");
    }

    #[test]
    fn counters_and_state_seq_out_of_range_are_repaired_to_zero() {
        let row = TargetRow {
            state_seq: -1,
            pass_count: i64::MAX,
            fail_count: 3,
            repeated_passes: -2,
            ..TargetRow::default()
        };
        let fixes: Vec<String> = row.fixes().iter().map(Fix::to_string).collect();
        assert_eq!(
            fixes,
            [
                "state_seq -1 -> 0",
                "pass_count 9223372036854775807 -> 0",
                "repeated_passes -2 -> 0"
            ]
        );
    }

    #[test]
    fn a_state_edited_out_of_range_is_taken_as_its_repair() {
        let row = TargetRow {
            state_seq: -1,
            repeated_fails: i64::MAX,
            repeated_passes: 3,
            ..TargetRow::default()
        };
        let s = row.state();
        assert_eq!((s.seq, s.repeated_fails, s.repeated_passes), (0, 0, 3));
    }

    #[test]
    fn columns_a_read_does_not_take_decode_to_their_defaults() {
        let values = [
            ("id", Value::Int(3)),
            ("status", Value::Bytes(b"FAIL".to_vec())),
            ("state_seq", Value::Int(9)),
            ("alerted", Value::Int(1)),
            ("repeated_fails", Value::Int(4)),
            ("repeated_passes", Value::Int(0)),
        ];
        let row = TargetRow::decode(&mut row_of(Read::State, &values), Read::State).unwrap();
        assert_eq!((row.id, row.name.as_str(), row.frequency), (3, "", 0));
        let state = row.state();
        assert_eq!(
            (state.status, state.seq, state.alerted),
            (Status::Fail, 9, true)
        );
    }

    #[test]
    fn times_read_as_text_are_utc() {
        let row = TargetRow {
            last_updated: "2026-11-24 10:04:22".into(),
            cert_expires_at: Some("1970-01-02 00:00:00".into()),
            ..TargetRow::default()
        };
        assert_eq!(row.last_updated_ms(), Some(1_795_514_662_000));
        assert_eq!(row.cert_expires_s(), Some(86_400));
        assert_eq!(TargetRow::default().last_updated_ms(), None);
        for odd in [
            "0000-00-00 00:00:00",
            "2026-11-24T10:04:22",
            "2026-13-01 00:00:00",
        ] {
            assert_eq!(utc_seconds(odd), None, "{odd}");
        }
    }
}
