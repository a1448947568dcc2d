//! Key files: 0600, never overwritten, strict on load.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use qiao_protocol::keys::*;
use qiao_protocol::*;

#[test]
fn signing_key_round_trip_with_0600() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("site.key");
    let key = generate_signing_key();
    save_signing_key(&path, &key).unwrap();
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let loaded = load_signing_key(&path).unwrap();
    assert_eq!(loaded.to_bytes(), key.to_bytes());
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("-----BEGIN QIAO ED25519 PRIVATE KEY-----\n"));

    // Never overwritten.
    let other = generate_signing_key();
    assert!(matches!(
        save_signing_key(&path, &other),
        Err(KeyFileError::Exists { .. })
    ));
    assert_eq!(load_signing_key(&path).unwrap().to_bytes(), key.to_bytes());

    // Refused when readable by others.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let err = load_signing_key(&path).unwrap_err();
    assert!(matches!(
        err,
        KeyFileError::InsecurePermissions { mode: 0o644, .. }
    ));
    assert!(err.to_string().contains("chmod 600"));
}

#[test]
fn public_key_round_trip_and_fingerprints() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.pub");
    let key = generate_signing_key().verifying_key();
    save_public_key(&path, &key).unwrap();
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(load_public_key(&path).unwrap(), key);

    let fp = fingerprint(&key);
    assert!(fp.starts_with("SHA256:"));
    assert_eq!(fp.len(), 7 + 64);
    assert!(fp[7..].starts_with(&key_id(&key).to_string()));
    assert_ne!(fingerprint(&generate_signing_key().verifying_key()), fp);
}

#[test]
fn wrong_kind_and_garbage_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("hub.pub");
    save_public_key(&public, &generate_signing_key().verifying_key()).unwrap();
    let err = load_signing_key(&public).unwrap_err();
    assert!(
        err.to_string()
            .contains("expected a QIAO ED25519 PRIVATE KEY file"),
        "{err}"
    );

    let private = dir.path().join("site.key");
    save_signing_key(&private, &generate_signing_key()).unwrap();
    assert!(matches!(
        load_public_key(&private),
        Err(KeyFileError::Format { .. })
    ));

    for (name, contents) in [
        ("empty", &b""[..]),
        ("binary", &[0xffu8, 0x00, 0xfe][..]),
        ("short", b"-----BEGIN QIAO ED25519 PRIVATE KEY-----\nabcd\n-----END QIAO ED25519 PRIVATE KEY-----\n"),
        ("huge", &vec![b'a'; 10_000][..]),
    ] {
        let p = dir.path().join(name);
        fs::write(&p, contents).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(load_signing_key(&p), Err(KeyFileError::Format { .. })), "{name}");
    }
    assert!(matches!(
        load_signing_key(&dir.path().join("missing")),
        Err(KeyFileError::Io { .. })
    ));
    // A weak public key in a file.
    let p = dir.path().join("weak.pub");
    fs::write(
        &p,
        format!(
            "-----BEGIN QIAO ED25519 PUBLIC KEY-----\n01{}\n-----END QIAO ED25519 PUBLIC KEY-----\n",
            "0".repeat(62)
        ),
    )
    .unwrap();
    assert!(matches!(
        load_public_key(&p),
        Err(KeyFileError::Format { .. })
    ));
}

#[test]
fn a_loaded_key_signs_like_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    let signer = Signer::generate();
    save_signing_key(&path, signer.signing_key()).unwrap();
    let reloaded = Signer::new(load_signing_key(&path).unwrap());
    assert_eq!(reloaded.key_id(), signer.key_id());
    assert_eq!(reloaded.verifying_key(), signer.verifying_key());
}
