//! The unit tests of [`super`]: client certificate files read, shared, refused and read again when
//! they change.

use super::*;
use crate::base::scratch::Dir;

/// A self-signed client certificate for `cn`: (certificate PEM, key PEM).
fn pair(cn: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
}

fn text(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn one_file_or_two_and_rows_naming_the_same_files_share_one_identity() {
    let dir = Dir::new("cc-share");
    let (cert, key) = pair("client-a");
    let c = dir.file("c.pem", &cert);
    let k = dir.file("k.pem", &key);
    let both = dir.file("both.pem", &format!("{cert}{key}"));
    let mut ids = ClientIdentities::default();
    let a = ids
        .get(1, Some(&text(&c)), Some(&text(&k)))
        .unwrap()
        .unwrap();
    let b = ids
        .get(2, Some(&text(&c)), Some(&text(&k)))
        .unwrap()
        .unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(a.current().subject, "CN=client-a");
    let one = ids.get(3, Some(&text(&both)), None).unwrap().unwrap();
    assert_ne!(one.id(), a.id());
    assert_eq!(ids.len(), 2);
    assert!(ids.get(3, None, Some("  ")).unwrap().is_none());
    assert_eq!(ids.len(), 1, "a pair no row names is forgotten");
    ids.release(1);
    ids.release(2);
    assert_eq!(ids.len(), 0);
}

#[test]
fn a_bad_file_is_named_with_what_is_wrong_with_it() {
    let dir = Dir::new("cc-bad");
    let (cert, key) = pair("client-b");
    let (_, other_key) = pair("someone-else");
    let c = dir.file("c.pem", &cert);
    let k = dir.file("k.pem", &key);
    let wrong = dir.file("wrong.pem", &other_key);
    let no_key = dir.file("nokey.pem", "just text\n");
    let enc = dir.file(
        "enc.pem",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
    );
    let missing = dir.path().join("missing.pem");
    let mut ids = ClientIdentities::default();
    let mut err = |cert: &Path, key: Option<&Path>| {
        let key = key.map(text);
        ids.get(9, Some(&text(cert)), key.as_deref())
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err(&missing, Some(&k)),
        format!(
            "client_cert {}: cannot read it: No such file or directory (os error 2)",
            missing.display()
        )
    );
    assert_eq!(
        err(&c, Some(&missing)),
        format!(
            "client_key {}: cannot read it: No such file or directory (os error 2)",
            missing.display()
        )
    );
    assert_eq!(
        err(&c, None),
        format!(
            "client_key {}: no private key in it (a PEM `BEGIN PRIVATE KEY` section)",
            c.display()
        )
    );
    assert!(err(&no_key, Some(&k))
        .ends_with("no certificate in it (a PEM `BEGIN CERTIFICATE` section)"));
    assert_eq!(
        err(&c, Some(&wrong)),
        format!(
            "client_key {}: not the key of the client_cert certificate (CN=client-b)",
            wrong.display(),
        )
    );
    assert!(err(&c, Some(&enc)).contains("the key is encrypted"));
    assert_eq!(
        ids.get(1, None, Some("/k.pem")).unwrap_err().to_string(),
        "client_key is set but client_cert is not: name the certificate too"
    );
}

#[test]
fn a_changed_file_is_read_again_in_place_and_a_broken_one_names_its_rows() {
    let dir = Dir::new("cc-refresh");
    let (cert, key) = pair("first");
    let both = dir.file("both.pem", &format!("{cert}{key}"));
    let mut ids = ClientIdentities::default();
    let identity = ids.get(5, Some(&text(&both)), None).unwrap().unwrap();
    assert!(ids.refresh().reloaded.is_empty(), "nothing changed");

    let (cert, key) = pair("second");
    std::fs::write(&both, format!("{cert}{key}")).unwrap();
    let seen = ids.refresh();
    assert_eq!(seen.reloaded.len(), 1);
    assert!(seen.rows.is_empty(), "still usable: swapped in place");
    assert_eq!(identity.current().subject, "CN=second");

    std::fs::write(&both, "broken").unwrap();
    let seen = ids.refresh();
    assert_eq!(seen.rows, vec![5]);
    assert!(seen.reloaded[0].error.is_some());
    assert!(ids.get(5, Some(&text(&both)), None).is_err());

    std::fs::write(&both, format!("{cert}{key}")).unwrap();
    assert_eq!(ids.refresh().rows, vec![5], "usable again");
    let again = ids.get(5, Some(&text(&both)), None).unwrap().unwrap();
    assert_eq!(again.current().subject, "CN=second");
}
