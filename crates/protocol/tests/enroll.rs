//! Enrollment: one-time tokens, proof of possession, pinning the hub key.

mod common;

use common::*;
use qiao_protocol::enroll::TOKEN_PREFIX;
use qiao_protocol::*;

#[test]
fn tokens_are_single_use_and_expire() {
    let (token, mut stored) = StoredToken::issue(NOW, 3600);
    let text = token.expose_secret();
    assert!(text.starts_with(TOKEN_PREFIX));
    assert_eq!(text.len(), TOKEN_PREFIX.len() + 64);
    assert_eq!(format!("{token:?}"), "EnrollmentToken(<redacted>)");
    assert!(!stored.used);
    assert_eq!(stored.expires_at, NOW + 3600);
    assert_eq!(TokenHash::of(&text), Ok(stored.hash));

    // Only the hash is stored, never the token.
    let json = serde_json::to_string(&stored).unwrap();
    assert!(!json.contains(&text[TOKEN_PREFIX.len()..]));
    assert_eq!(serde_json::from_str::<StoredToken>(&json).unwrap(), stored);

    assert_eq!(stored.verify(&text, NOW), Ok(()));
    assert_eq!(stored.verify(&text, NOW + 3599), Ok(()));
    assert_eq!(
        stored.verify(&text, NOW + 3600),
        Err(EnrollError::TokenExpired {
            expires_at: NOW + 3600,
            now: NOW + 3600
        })
    );
    // Verification alone changes nothing; redeeming marks it used, once.
    assert_eq!(stored.redeem(&text, NOW + 1), Ok(()));
    assert!(stored.used);
    assert_eq!(
        stored.redeem(&text, NOW + 2),
        Err(EnrollError::TokenAlreadyUsed)
    );
    assert_eq!(
        stored.verify(&text, NOW + 2),
        Err(EnrollError::TokenAlreadyUsed)
    );
}

#[test]
fn wrong_and_malformed_tokens_are_invalid() {
    let (_token, stored) = StoredToken::issue(NOW, 3600);
    let (other, _) = StoredToken::issue(NOW, 3600);
    assert_eq!(
        stored.verify(&other.expose_secret(), NOW),
        Err(EnrollError::InvalidToken)
    );
    let good = _token.expose_secret();
    for bad in [
        String::new(),
        "qiao-enroll-".into(),
        good.to_uppercase(),
        good[TOKEN_PREFIX.len()..].to_owned(),
        format!("{good}0"),
        good[..good.len() - 1].to_owned(),
        format!(" {good}"),
    ] {
        assert_eq!(
            stored.verify(&bad, NOW),
            Err(EnrollError::InvalidToken),
            "{bad:?}"
        );
    }
    // A wrong token on an expired or used record says only "invalid".
    let mut used = stored.clone();
    used.used = true;
    assert_eq!(
        used.verify(&other.expose_secret(), NOW + 10_000),
        Err(EnrollError::InvalidToken)
    );
}

#[test]
fn enrollment_checks_token_then_proof_and_burns_the_token_only_on_success() {
    let (token, mut stored) = StoredToken::issue(NOW, 600);
    let site_key = keys::generate_signing_key();
    let req = EnrollRequest::new(&token.expose_secret(), site("st-olav"), &site_key).unwrap();
    assert!(!format!("{req:?}").contains(&token.expose_secret()));

    // Round trip on the wire.
    let req: EnrollRequest = serde_json::from_str(&serde_json::to_string(&req).unwrap()).unwrap();

    // A forged request: someone else's key with this site's proof.
    let mut forged = req.clone();
    forged.public_key = PublicKey::new(keys::generate_signing_key().verifying_key()).unwrap();
    assert_eq!(
        enroll(&mut stored, &forged, NOW),
        Err(EnrollError::BadProof)
    );
    let mut renamed = req.clone();
    renamed.site_name = site("other");
    assert_eq!(
        enroll(&mut stored, &renamed, NOW),
        Err(EnrollError::BadProof)
    );
    assert!(!stored.used, "a failed enrollment must not burn the token");

    let key = enroll(&mut stored, &req, NOW).unwrap();
    assert_eq!(key, site_key.verifying_key());
    assert!(stored.used);
    assert_eq!(
        enroll(&mut stored, &req, NOW),
        Err(EnrollError::TokenAlreadyUsed)
    );

    let (_, mut expired) = StoredToken::issue(NOW - 1000, 600);
    expired.hash = TokenHash::of(&token.expose_secret()).unwrap();
    assert!(matches!(
        enroll(&mut expired, &req, NOW),
        Err(EnrollError::TokenExpired { .. })
    ));
}

#[test]
fn the_site_pins_the_hub_key_and_then_talks() {
    let hub = Signer::generate();
    let resp = EnrollResponse::new(site("a"), hub.public_key().unwrap());
    let resp: EnrollResponse =
        serde_json::from_str(&serde_json::to_string(&resp).unwrap()).unwrap();
    let fp = fingerprint(&hub.verifying_key());
    assert_eq!(resp.pin(None).unwrap(), hub.verifying_key());
    assert_eq!(resp.pin(Some(&fp)).unwrap(), hub.verifying_key());
    assert!(matches!(
        resp.pin(Some(&fingerprint(&Signer::generate().verifying_key()))),
        Err(EnrollError::HubKey(_))
    ));
    let mut lying = resp.clone();
    lying.hub_key_id = Signer::generate().key_id();
    assert!(matches!(lying.pin(None), Err(EnrollError::HubKey(_))));

    // After enrollment both sides can verify each other.
    let site_signer = Signer::generate();
    let at_site = Verifier::for_site(resp.site_id.clone(), resp.pin(Some(&fp)).unwrap()).unwrap();
    let mut at_hub = Verifier::for_hub();
    at_hub
        .register_site(site("a"), site_signer.verifying_key())
        .unwrap();
    let j = job();
    let env = hub.seal_job(&j, &site("a"), NOW).unwrap();
    assert!(ReplayGuard::default().open(&at_site, &env, NOW).is_ok());
    let env = site_signer
        .seal_result(&count_result(&j, &site("a")), NOW)
        .unwrap();
    assert!(ReplayGuard::default().open(&at_hub, &env, NOW).is_ok());
}

#[test]
fn weak_and_malformed_public_keys_are_rejected() {
    // The identity point encodes as 1 followed by zeros: small order.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let hex: String = identity.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(PublicKey::parse(&hex), Err(PublicKeyError::Weak));
    let good = PublicKey::new(Signer::generate().verifying_key())
        .unwrap()
        .to_string();
    assert_eq!(PublicKey::parse(&good).unwrap().to_string(), good);
    if good != good.to_uppercase() {
        assert_eq!(
            PublicKey::parse(&good.to_uppercase()),
            Err(PublicKeyError::Encoding)
        );
    }
    assert_eq!(PublicKey::parse("00"), Err(PublicKeyError::Encoding));
    // Weak keys cannot be pinned or registered either.
    let weak = ed25519_dalek::VerifyingKey::from_bytes(&identity).unwrap();
    assert!(Verifier::for_site(site("a"), weak).is_err());
    assert!(Verifier::for_hub().register_site(site("a"), weak).is_err());
}
