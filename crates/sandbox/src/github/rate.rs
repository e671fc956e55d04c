//! GitHub's rate limits: the hourly budget behind `X-RateLimit-*` and `/rate_limit`, and
//! the secondary limit on content-creating requests (403 with `retry-after`).

use std::collections::VecDeque;
use std::sync::Mutex;

use axum::http::{Method, StatusCode};

use crate::now_ms;

use super::errors::{GitHubError, error};
use super::{GitHub, RATE_LIMIT, SECONDARY_LIMIT_DOCS};

/// GitHub's secondary rate limit on content-creating requests: at most so many in any
/// minute. A sliding window, so `retry-after` says when the oldest one leaves it.
pub(crate) struct MutationLimit {
    per_minute: usize,
    recent: Mutex<VecDeque<i64>>,
}

impl MutationLimit {
    pub(crate) fn per_minute(per_minute: u32) -> MutationLimit {
        MutationLimit {
            per_minute: per_minute as usize,
            recent: Mutex::default(),
        }
    }

    /// Counts a mutation at `now_ms`, or refuses it with the seconds until one is allowed.
    /// A refused mutation does not count, so a client that waits as told gets through.
    pub(super) fn admit(&self, now_ms: i64) -> Result<(), u64> {
        let mut recent = self.recent.lock().expect("mutations lock");
        while recent.front().is_some_and(|&at| at <= now_ms - 60_000) {
            recent.pop_front();
        }
        if recent.len() < self.per_minute {
            recent.push_back(now_ms);
            return Ok(());
        }
        let frees_at = recent.front().map_or(now_ms, |&oldest| oldest + 60_000);
        Err(((frees_at - now_ms + 999) / 1000).max(1) as u64)
    }
}

impl GitHub {
    /// The headers GitHub puts on every response, after counting this request.
    pub(super) fn count(&self) -> Result<[(&'static str, u64); 4], GitHubError> {
        let now = now_ms();
        let mut rate = self.rate.lock().expect("rate lock");
        if now - rate.0 >= 3_600_000 {
            *rate = (now, 0);
        }
        let reset = ((rate.0 + 3_600_000) / 1000) as u64;
        if rate.1 >= RATE_LIMIT {
            return Err(error(
                StatusCode::FORBIDDEN,
                "API rate limit exceeded for installation. If you reach out to GitHub Support for help, please include the request ID.",
                "https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting",
            ));
        }
        rate.1 += 1;
        Ok([
            ("x-ratelimit-limit", RATE_LIMIT),
            ("x-ratelimit-remaining", RATE_LIMIT - rate.1),
            ("x-ratelimit-used", rate.1),
            ("x-ratelimit-reset", reset),
        ])
    }

    /// GitHub's secondary limit: a content-creating request beyond the minute's budget is
    /// refused with 403 and `retry-after`; reads are never held back by it.
    pub(super) fn admit(&self, method: &Method) -> Result<(), GitHubError> {
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return Ok(());
        }
        self.mutations.admit(now_ms()).map_err(|secs| GitHubError {
            retry_after: Some(secs),
            ..error(
                StatusCode::FORBIDDEN,
                "You have exceeded a secondary rate limit and have been temporarily blocked from content creation. Please retry your request again later. If you reach out to GitHub Support for help, please include the request ID.",
                SECONDARY_LIMIT_DOCS,
            )
        })
    }
}
