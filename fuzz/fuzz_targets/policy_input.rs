//! The shipped policy pack evaluated against an arbitrary input document, as the admins'
//! test bench (`POST /api/v1/policy-packs/{version}/evaluate`) and `paddock policy eval`
//! do: the document is any JSON the caller sends.
//!
//! Properties: no panic; decided within the time bound; either a decision or a typed
//! error (never a malformed reason: the shipped rules always produce reasons); a decision
//! is consistent (deny iff a denial, approval iff approvals and no denial; reasons sorted
//! and distinct) and the same when evaluated again.
#![no_main]

use std::sync::LazyLock;

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use paddock_fuzz::{arbitrary_json, bounded};
use paddock_policy::{Decision, Outcome, Pack, PolicyError};
use serde_json::Value as Json;

static PACK: LazyLock<Pack> = LazyLock::new(|| paddock_policy::shipped().expect("shipped pack"));

fuzz_target!(|data: &[u8]| {
    // JSON text when it is (the seeds are real input documents), else a document built
    // from the bytes.
    let input = match serde_json::from_slice::<Json>(data) {
        Ok(json) => json,
        Err(_) => match arbitrary_json(&mut Unstructured::new(data)) {
            Ok(json) => json,
            Err(_) => return,
        },
    };
    check(&PACK, &input);
});

fn check(pack: &Pack, input: &Json) {
    let decided = bounded("evaluating the pack", || pack.evaluate(input));
    match decided {
        Ok(decision) => {
            assert_consistent(&decision);
            let again = pack.evaluate(input).expect("decided once, decided again");
            assert_eq!(decision, again, "the same input, the same decision");
        }
        Err(PolicyError::Malformed { rule, message }) => {
            panic!("the shipped rule {rule} produced a malformed reason: {message}")
        }
        Err(_) => {}
    }
}

fn assert_consistent(d: &Decision) {
    let expected = if !d.denials.is_empty() {
        Outcome::Deny
    } else if !d.approvals.is_empty() {
        Outcome::RequireApproval
    } else {
        Outcome::Allow
    };
    assert_eq!(d.outcome, expected, "{d:?}");
    for reasons in [&d.denials, &d.approvals] {
        assert!(
            reasons.windows(2).all(|w| w[0] < w[1]),
            "sorted and distinct: {d:?}"
        );
        assert!(
            reasons.iter().all(|r| !r.rule.is_empty()),
            "every reason names its rule"
        );
    }
}
