//! Signed envelopes: round trips and every rejection.

mod common;

use common::*;
use ed25519_dalek::Signer as _;
use proptest::prelude::*;
use qiao_protocol::envelope::{SignatureHex, DEFAULT_MAX_SKEW_SECS, MAX_ENVELOPE_BYTES};
use qiao_protocol::*;

struct Net {
    hub: Signer,
    site_a: Signer,
    site_b: Signer,
    /// Site A's view: pins the hub.
    at_a: Verifier,
    /// The hub's view: knows sites A and B.
    at_hub: Verifier,
}

fn net() -> Net {
    let hub = Signer::generate();
    let site_a = Signer::generate();
    let site_b = Signer::generate();
    let at_a = Verifier::for_site(site("a"), hub.verifying_key()).unwrap();
    let mut at_hub = Verifier::for_hub();
    at_hub
        .register_site(site("a"), site_a.verifying_key())
        .unwrap();
    at_hub
        .register_site(site("b"), site_b.verifying_key())
        .unwrap();
    Net {
        hub,
        site_a,
        site_b,
        at_a,
        at_hub,
    }
}

/// Re-signs `env` as is (after a test edited it) with `key`, so that only the edited semantics
/// are under test, not the signature.
fn resign(env: &mut Envelope, signer: &ed25519_dalek::SigningKey) {
    env.key_id = key_id(&signer.verifying_key());
    env.signature = SignatureHex(signer.sign(&env.signed_bytes()).to_bytes());
}

#[test]
fn job_round_trip_through_bytes() {
    let n = net();
    let j = job();
    let env = n.hub.seal_job(&j, &site("a"), NOW).unwrap();
    let bytes = env.to_json();
    let parsed = Envelope::from_json(&bytes).unwrap();
    assert_eq!(parsed, env);
    let mut guard = ReplayGuard::default();
    let opened = guard.open(&n.at_a, &parsed, NOW + 3).unwrap();
    assert_eq!(opened.signer, Principal::Hub);
    assert_eq!(opened.kind, MessageKind::Job);
    assert_eq!(opened.job_id, Some(j.job_id));
    assert_eq!(opened.site_id, site("a"));
    assert_eq!(opened.message, Message::Job(j));
    assert_eq!(guard.len(), 1);
}

#[test]
fn result_poll_and_ack_round_trip() {
    let n = net();
    let j = job();
    let mut guard = ReplayGuard::default();

    let poll = n.site_a.seal_poll(&site("a"), NOW).unwrap();
    let opened = guard.open(&n.at_hub, &poll, NOW).unwrap();
    assert_eq!(opened.signer, Principal::Site(site("a")));
    assert_eq!(opened.message, Message::Poll(None));
    assert_eq!(opened.job_id, None);
    assert_eq!(poll.body, "{}");

    let status = SiteStatus {
        data_as_of: Some("2024-06-30".into()),
        persons_rounded: SiteStatus::round_persons(2_349),
        min_cell_count: 11,
        obfuscation: true,
        dp: false,
    };
    assert_eq!(status.persons_rounded, 2_300);
    assert_eq!(SiteStatus::round_persons(2_350), 2_400);
    assert_eq!(SiteStatus::round_persons(49), 0);
    let poll = n
        .site_a
        .seal_poll_with_status(&site("a"), Some(&status), NOW)
        .unwrap();
    let poll = Envelope::from_json(&poll.to_json()).unwrap();
    let opened = guard.open(&n.at_hub, &poll, NOW).unwrap();
    assert_eq!(opened.message, Message::Poll(Some(status)));

    let result = count_result(&j, &site("a"));
    let env = n.site_a.seal_result(&result, NOW).unwrap();
    let env = Envelope::from_json(&env.to_json()).unwrap();
    let opened = guard.open(&n.at_hub, &env, NOW).unwrap();
    assert_eq!(opened.message, Message::Result(result));

    let demo = demographics_result(j.job_id, &site("b"));
    let env = n.site_b.seal_result(&demo, NOW).unwrap();
    assert_eq!(
        guard.open(&n.at_hub, &env, NOW).unwrap().message,
        Message::Result(demo)
    );

    let ack = n.hub.seal_result_ack(j.job_id, &site("a"), NOW).unwrap();
    let mut site_guard = ReplayGuard::default();
    assert_eq!(
        site_guard.open(&n.at_a, &ack, NOW).unwrap().message,
        Message::ResultAck
    );
}

#[test]
fn tampered_body_header_and_signature_are_rejected() {
    let n = net();
    let j = job();
    let env = n
        .site_a
        .seal_result(&count_result(&j, &site("a")), NOW)
        .unwrap();
    let check = |e: &Envelope| ReplayGuard::default().open(&n.at_hub, e, NOW);
    assert!(check(&env).is_ok());

    // Body: change one count.
    let mut t = env.clone();
    t.body = t.body.replace("\"value\":410", "\"value\":411");
    assert_ne!(t.body, env.body);
    assert!(matches!(check(&t), Err(VerifyError::BadSignature { .. })));

    // Every header field.
    let mut t = env.clone();
    t.kind = MessageKind::Poll;
    assert!(matches!(check(&t), Err(VerifyError::BadSignature { .. })));
    let mut t = env.clone();
    t.job_id = Some(JobId::random());
    assert!(matches!(check(&t), Err(VerifyError::BadSignature { .. })));
    let mut t = env.clone();
    t.job_id = None;
    assert!(matches!(check(&t), Err(VerifyError::BadSignature { .. })));
    let mut t = env.clone();
    t.site_id = site("b");
    assert!(matches!(check(&t), Err(VerifyError::BadSignature { .. })));
    let mut t = env.clone();
    t.nonce = Nonce::random();
    assert!(matches!(check(&t), Err(VerifyError::BadSignature { .. })));
    let mut t = env.clone();
    t.timestamp += 1;
    assert!(matches!(check(&t), Err(VerifyError::BadSignature { .. })));
    let mut t = env.clone();
    t.v = 2;
    assert!(matches!(
        check(&t),
        Err(VerifyError::UnsupportedVersion { found: 2 })
    ));
    // Claiming another known key.
    let mut t = env.clone();
    t.key_id = n.site_b.key_id();
    assert!(matches!(check(&t), Err(VerifyError::BadSignature { .. })));

    // Signature: every single bit.
    for byte in 0..64 {
        for bit in 0..8 {
            let mut t = env.clone();
            t.signature.0[byte] ^= 1 << bit;
            assert!(
                matches!(check(&t), Err(VerifyError::BadSignature { .. })),
                "byte {byte} bit {bit}"
            );
        }
    }
}

#[test]
fn replays_are_rejected_until_they_expire() {
    let n = net();
    let env = n.hub.seal_job(&job(), &site("a"), NOW).unwrap();
    let mut guard = ReplayGuard::default();
    assert!(guard.open(&n.at_a, &env, NOW).is_ok());
    let err = guard.open(&n.at_a, &env, NOW + 1).unwrap_err();
    assert!(matches!(err, VerifyError::Replay { nonce, .. } if nonce == env.nonce));
    assert!(err.to_string().contains("replay"));
    // Same nonce, different (validly signed) content: still a replay.
    let j2 = job();
    let env2 = n
        .hub
        .seal(
            MessageKind::Job,
            Some(j2.job_id),
            site("a"),
            serde_json::to_string(&j2).unwrap(),
            env.nonce,
            NOW,
        )
        .unwrap();
    assert!(matches!(
        guard.open(&n.at_a, &env2, NOW + 2),
        Err(VerifyError::Replay { .. })
    ));
    // Once out of the window it is rejected as expired (and the nonce is forgotten).
    assert!(matches!(
        guard.open(&n.at_a, &env, NOW + DEFAULT_MAX_SKEW_SECS + 1),
        Err(VerifyError::Expired { .. })
    ));
    let fresh = n.hub.seal_job(&job(), &site("a"), NOW + 400).unwrap();
    assert!(guard.open(&n.at_a, &fresh, NOW + 400).is_ok());
    assert_eq!(guard.len(), 1, "expired nonces are pruned");
}

#[test]
fn expired_and_future_timestamps_are_rejected() {
    let n = net();
    let skew = DEFAULT_MAX_SKEW_SECS;
    let at = |ts: i64| n.hub.seal_job(&job(), &site("a"), ts).unwrap();
    let mut guard = ReplayGuard::default();
    assert!(guard.open(&n.at_a, &at(NOW - skew), NOW).is_ok());
    assert!(guard.open(&n.at_a, &at(NOW + skew), NOW).is_ok());
    assert!(matches!(
        guard.open(&n.at_a, &at(NOW - skew - 1), NOW),
        Err(VerifyError::Expired { timestamp, now: NOW, max_skew_secs: 300 }) if timestamp == NOW - skew - 1
    ));
    let err = guard.open(&n.at_a, &at(NOW + skew + 1), NOW).unwrap_err();
    assert!(matches!(err, VerifyError::FromTheFuture { .. }));
    assert!(err.to_string().contains("clocks"));
    // Extreme values do not overflow.
    assert!(matches!(
        guard.open(&n.at_a, &at(i64::MIN), NOW),
        Err(VerifyError::Expired { .. })
    ));
    assert!(matches!(
        guard.open(&n.at_a, &at(i64::MAX), NOW),
        Err(VerifyError::FromTheFuture { .. })
    ));
    let mut g = ReplayGuard::default();
    assert!(g.open(&n.at_a, &at(i64::MAX), i64::MAX).is_ok());
    // A custom window.
    let mut tight = ReplayGuard::new(5);
    assert!(matches!(
        tight.open(&n.at_a, &at(NOW - 6), NOW),
        Err(VerifyError::Expired { .. })
    ));
}

#[test]
fn a_clock_stepping_back_cannot_readmit_a_forgotten_nonce() {
    let n = net();
    let old = n.hub.seal_job(&job(), &site("a"), NOW).unwrap();
    let mut guard = ReplayGuard::default();
    assert!(guard.open(&n.at_a, &old, NOW).is_ok());
    // Time moves on far enough for the nonce to be pruned...
    let later = n.hub.seal_job(&job(), &site("a"), NOW + 1000).unwrap();
    assert!(guard.open(&n.at_a, &later, NOW + 1000).is_ok());
    assert_eq!(guard.len(), 1);
    // ...then the clock steps back: the old message is still refused.
    assert!(matches!(
        guard.open(&n.at_a, &old, NOW),
        Err(VerifyError::Expired { now, .. }) if now == NOW + 1000
    ));
}

#[test]
fn messages_for_another_site_are_rejected() {
    let n = net();
    let env = n.hub.seal_job(&job(), &site("b"), NOW).unwrap();
    let err = ReplayGuard::default().open(&n.at_a, &env, NOW).unwrap_err();
    assert!(
        matches!(&err, VerifyError::WrongSite { expected, found } if *expected == site("a") && *found == site("b"))
    );
    assert!(err.to_string().contains("addressed to site b"));
}

#[test]
fn unknown_signers_are_rejected() {
    let n = net();
    let stranger = Signer::generate();
    let env = stranger.seal_job(&job(), &site("a"), NOW).unwrap();
    assert!(matches!(
        ReplayGuard::default().open(&n.at_a, &env, NOW),
        Err(VerifyError::UnknownSigner { key_id }) if key_id == stranger.key_id()
    ));
    let env = stranger.seal_poll(&site("a"), NOW).unwrap();
    assert!(matches!(
        ReplayGuard::default().open(&n.at_hub, &env, NOW),
        Err(VerifyError::UnknownSigner { .. })
    ));
    // Reflection: the hub's own message sent back to the hub.
    let env = n.hub.seal_job(&job(), &site("a"), NOW).unwrap();
    assert!(matches!(
        ReplayGuard::default().open(&n.at_hub, &env, NOW),
        Err(VerifyError::UnknownSigner { .. })
    ));
    // A revoked key.
    let mut at_hub = n.at_hub.clone();
    assert_eq!(
        at_hub.remove_key(&n.site_b.key_id()),
        Some(Principal::Site(site("b")))
    );
    let env = n.site_b.seal_poll(&site("b"), NOW).unwrap();
    assert!(matches!(
        ReplayGuard::default().open(&at_hub, &env, NOW),
        Err(VerifyError::UnknownSigner { .. })
    ));
}

#[test]
fn a_site_cannot_speak_for_another_site_or_for_the_hub() {
    let n = net();
    let j = job();
    // Site A signs a result claiming to be site B.
    let env = n
        .site_a
        .seal_result(&count_result(&j, &site("b")), NOW)
        .unwrap();
    assert!(matches!(
        ReplayGuard::default().open(&n.at_hub, &env, NOW),
        Err(VerifyError::SiteImpersonation { signer, claimed }) if signer == site("a") && claimed == site("b")
    ));
    // Site A signs a job (a hub kind).
    let env = n.site_a.seal_job(&j, &site("a"), NOW).unwrap();
    assert!(matches!(
        ReplayGuard::default().open(&n.at_hub, &env, NOW),
        Err(VerifyError::WrongDirection {
            kind: MessageKind::Job,
            ..
        })
    ));
    // The hub signs a poll (a site kind) to site A.
    let env = n.hub.seal_poll(&site("a"), NOW).unwrap();
    assert!(matches!(
        ReplayGuard::default().open(&n.at_a, &env, NOW),
        Err(VerifyError::WrongDirection {
            kind: MessageKind::Poll,
            ..
        })
    ));
    // One key cannot be registered for two principals.
    let mut at_hub = n.at_hub.clone();
    assert!(matches!(
        at_hub.register_site(site("c"), n.site_a.verifying_key()),
        Err(KeyRegistrationError::AlreadyRegistered { .. })
    ));
    // Re-registering the same key for the same site is idempotent.
    assert_eq!(
        at_hub.register_site(site("a"), n.site_a.verifying_key()),
        Ok(n.site_a.key_id())
    );
}

#[test]
fn body_and_header_must_agree() {
    let n = net();
    let hub_key = n.hub.signing_key().clone();
    let j = job();
    // The signer refuses to sign a mismatch...
    assert!(matches!(
        n.hub.seal(
            MessageKind::Job,
            Some(JobId::random()),
            site("a"),
            serde_json::to_string(&j).unwrap(),
            Nonce::random(),
            NOW
        ),
        Err(SealError::Body { .. })
    ));
    // ...and a receiver rejects one signed by other means.
    let mut env = n.hub.seal_job(&j, &site("a"), NOW).unwrap();
    env.job_id = Some(JobId::random());
    resign(&mut env, &hub_key);
    assert!(matches!(
        ReplayGuard::default().open(&n.at_a, &env, NOW),
        Err(VerifyError::BodyMismatch {
            field: "job_id",
            ..
        })
    ));

    let site_key = n.site_a.signing_key().clone();
    let mut env = n
        .site_a
        .seal_result(&count_result(&j, &site("a")), NOW)
        .unwrap();
    let mut other = count_result(&j, &site("b"));
    other.site_id = site("b");
    env.body = serde_json::to_string(&other).unwrap();
    resign(&mut env, &site_key);
    assert!(matches!(
        ReplayGuard::default().open(&n.at_hub, &env, NOW),
        Err(VerifyError::BodyMismatch {
            field: "site_id",
            ..
        })
    ));

    // A poll must not carry a job id; a job must.
    let mut env = n.site_a.seal_poll(&site("a"), NOW).unwrap();
    env.job_id = Some(j.job_id);
    resign(&mut env, &site_key);
    assert!(matches!(
        ReplayGuard::default().open(&n.at_hub, &env, NOW),
        Err(VerifyError::JobIdPresence {
            kind: MessageKind::Poll
        })
    ));
    assert!(matches!(
        n.hub.seal(
            MessageKind::Job,
            None,
            site("a"),
            "{}".into(),
            Nonce::random(),
            NOW
        ),
        Err(SealError::JobIdPresence { .. })
    ));

    // A body that is not the kind's type.
    let mut env = n.site_a.seal_poll(&site("a"), NOW).unwrap();
    env.body = "{\"person_ids\":[1,2,3]}".into();
    resign(&mut env, &site_key);
    assert!(matches!(
        ReplayGuard::default().open(&n.at_hub, &env, NOW),
        Err(VerifyError::MalformedBody {
            kind: MessageKind::Poll,
            ..
        })
    ));
}

#[test]
fn non_aggregate_results_are_neither_signed_nor_accepted() {
    let n = net();
    let j = job();
    let mut r = count_result(&j, &site("a"));
    if let Outcome::Done {
        payload: Payload::CohortCount(c),
    } = &mut r.outcome
    {
        c.final_persons = Released::Exact { value: 2 };
    }
    assert!(matches!(
        n.site_a.seal_result(&r, NOW),
        Err(SealError::NotAggregate(
            AggregateViolation::ExactBelowThreshold { .. }
        ))
    ));
    assert!(matches!(
        n.site_a.seal(
            MessageKind::Result,
            Some(j.job_id),
            site("a"),
            serde_json::to_string(&r).unwrap(),
            Nonce::random(),
            NOW
        ),
        Err(SealError::NotAggregate(_))
    ));
    // Signed by other means: the hub still refuses it.
    let site_key = n.site_a.signing_key().clone();
    let mut env = n
        .site_a
        .seal_result(&count_result(&j, &site("a")), NOW)
        .unwrap();
    env.body = serde_json::to_string(&r).unwrap();
    resign(&mut env, &site_key);
    assert!(matches!(
        ReplayGuard::default().open(&n.at_hub, &env, NOW),
        Err(VerifyError::NotAggregate(_))
    ));
    // Extra fields (e.g. a list of ids) do not even parse.
    let mut v = serde_json::to_value(count_result(&j, &site("a"))).unwrap();
    v["outcome"]["payload"]["person_ids"] = serde_json::json!([11, 12]);
    env.body = v.to_string();
    resign(&mut env, &site_key);
    assert!(matches!(
        ReplayGuard::default().open(&n.at_hub, &env, NOW),
        Err(VerifyError::MalformedBody { .. })
    ));
}

#[test]
fn a_full_replay_cache_refuses_rather_than_forgets() {
    let n = net();
    let mut guard = ReplayGuard::default().with_max_nonces(2);
    for _ in 0..2 {
        let env = n.hub.seal_job(&job(), &site("a"), NOW).unwrap();
        assert!(guard.open(&n.at_a, &env, NOW).is_ok());
    }
    let env = n.hub.seal_job(&job(), &site("a"), NOW).unwrap();
    assert!(matches!(
        guard.open(&n.at_a, &env, NOW),
        Err(VerifyError::ReplayCacheFull { max: 2 })
    ));
    // Once the old nonces expire there is room again.
    let env = n.hub.seal_job(&job(), &site("a"), NOW + 301).unwrap();
    assert!(guard.open(&n.at_a, &env, NOW + 301).is_ok());
}

#[test]
fn oversized_and_malformed_input_is_rejected_cleanly() {
    let n = net();
    assert!(matches!(
        Envelope::from_json(&vec![b' '; MAX_ENVELOPE_BYTES + 1]),
        Err(VerifyError::TooLarge { .. })
    ));
    for garbage in [
        &b""[..],
        b"{}",
        b"null",
        b"[1,2]",
        b"{\"v\":1}",
        &[0xff, 0xfe],
    ] {
        assert!(matches!(
            Envelope::from_json(garbage),
            Err(VerifyError::Malformed(_))
        ));
    }
    // Uppercase hex is not a second spelling of the same envelope.
    let env = n.hub.seal_job(&job(), &site("a"), NOW).unwrap();
    let text = String::from_utf8(env.to_json()).unwrap();
    let sig = env.signature.to_string();
    let upper = text.replace(&sig, &sig.to_uppercase());
    if upper != text {
        assert!(Envelope::from_json(upper.as_bytes()).is_err());
    }
    // Unknown fields are refused.
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["extra"] = serde_json::json!(1);
    assert!(Envelope::from_json(v.to_string().as_bytes()).is_err());
    // An oversized body is refused by signer and verifier.
    let big = "x".repeat(envelope_max_body() + 1);
    assert!(matches!(
        n.hub.seal(
            MessageKind::ResultAck,
            Some(JobId::random()),
            site("a"),
            big.clone(),
            Nonce::random(),
            NOW
        ),
        Err(SealError::BodyTooLarge { .. })
    ));
    let mut e = env.clone();
    e.body = big;
    assert!(matches!(
        n.at_a.verify(&e),
        Err(VerifyError::BodyTooLarge { .. })
    ));
}

fn envelope_max_body() -> usize {
    qiao_protocol::envelope::MAX_BODY_BYTES
}

#[test]
fn every_rejection_has_its_own_message() {
    let k = KeyId::from_bytes([1; 16]);
    let nonce = Nonce::from_bytes([2; 16]);
    let errors = [
        VerifyError::TooLarge { len: 1, max: 0 },
        VerifyError::Malformed("x".into()),
        VerifyError::UnsupportedVersion { found: 9 },
        VerifyError::BodyTooLarge { len: 1, max: 0 },
        VerifyError::UnknownSigner { key_id: k },
        VerifyError::BadSignature { key_id: k },
        VerifyError::WrongDirection {
            kind: MessageKind::Job,
            signer: "site a".into(),
            receiver: "the hub".into(),
        },
        VerifyError::WrongSite {
            expected: site("a"),
            found: site("b"),
        },
        VerifyError::SiteImpersonation {
            signer: site("a"),
            claimed: site("b"),
        },
        VerifyError::JobIdPresence {
            kind: MessageKind::Poll,
        },
        VerifyError::Expired {
            timestamp: 0,
            now: 1000,
            max_skew_secs: 300,
        },
        VerifyError::FromTheFuture {
            timestamp: 2000,
            now: 1000,
            max_skew_secs: 300,
        },
        VerifyError::Replay { key_id: k, nonce },
        VerifyError::ReplayCacheFull { max: 1 },
        VerifyError::MalformedBody {
            kind: MessageKind::Job,
            reason: "x".into(),
        },
        VerifyError::BodyMismatch {
            field: "job_id",
            body: "1".into(),
            header: "2".into(),
        },
        VerifyError::NotAggregate(AggregateViolation::DuplicateCell { index: 1 }),
    ];
    let texts: std::collections::HashSet<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(texts.len(), errors.len());
    for t in &texts {
        assert!(t.len() > 10, "{t}");
    }
}

fn signed_job_bytes() -> (Net, Envelope, Vec<u8>) {
    let n = net();
    let env = n.hub.seal_job(&job(), &site("a"), NOW).unwrap();
    let bytes = env.to_json();
    (n, env, bytes)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Changing any byte(s) of a signed envelope never yields a message that verifies.
    #[test]
    fn mutated_bytes_never_verify(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4)
    ) {
        let (n, _env, bytes) = signed_job_bytes();
        let mut mutated = bytes.clone();
        for (at, xor) in &edits {
            let i = at.index(mutated.len());
            mutated[i] ^= xor;
        }
        prop_assume!(mutated != bytes);
        if let Ok(parsed) = Envelope::from_json(&mutated) {
            let verdict = ReplayGuard::default().open(&n.at_a, &parsed, NOW);
            prop_assert!(verdict.is_err(), "a mutated envelope verified: {}", String::from_utf8_lossy(&mutated));
        }
    }

    /// Inserting or deleting bytes either breaks the envelope or leaves it meaning exactly the
    /// same (e.g. whitespace between JSON tokens).
    #[test]
    fn inserted_or_deleted_bytes_never_change_what_verifies(
        at in any::<prop::sample::Index>(),
        insert in proptest::option::of(any::<u8>()),
    ) {
        let (n, env, bytes) = signed_job_bytes();
        let mut mutated = bytes.clone();
        let i = at.index(mutated.len());
        match insert {
            Some(b) => mutated.insert(i, b),
            None => { mutated.remove(i); }
        }
        if let Ok(parsed) = Envelope::from_json(&mutated) {
            if ReplayGuard::default().open(&n.at_a, &parsed, NOW).is_ok() {
                prop_assert_eq!(parsed, env);
            }
        }
    }

    /// Mutating the signed byte string itself never verifies under the same signature.
    #[test]
    fn mutated_signed_bytes_never_verify(at in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let (n, env, _) = signed_job_bytes();
        let mut signed = env.signed_bytes();
        let i = at.index(signed.len());
        signed[i] ^= xor;
        let sig = ed25519_dalek::Signature::from_bytes(&env.signature.0);
        prop_assert!(n.hub.verifying_key().verify_strict(&signed, &sig).is_err());
    }

    /// Arbitrary input never panics and never verifies.
    #[test]
    fn arbitrary_bytes_never_verify(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let n = net();
        if let Ok(parsed) = Envelope::from_json(&bytes) {
            prop_assert!(ReplayGuard::default().open(&n.at_a, &parsed, NOW).is_err());
        }
    }
}
