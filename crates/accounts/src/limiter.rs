//! The sign-in limiter: at most [`Limits::per_account`] failed sign-ins per account and
//! [`Limits::per_address`] per source address within [`Limits::window`].
//!
//! An attempt first *reserves* a slot in both buckets ([`SignInLimiter::begin`]); the check and
//! the reservation happen under one lock, so attempts running in parallel cannot all pass a
//! check made before any of them failed. The reservation becomes a failure
//! ([`Attempt::failed`]) or is released ([`Attempt::succeeded`], or dropping the attempt).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The limiter's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Failed sign-ins (and attempts in progress) allowed per account within the window.
    pub per_account: usize,
    /// Failed sign-ins (and attempts in progress) allowed per source address within the window.
    pub per_address: usize,
    /// The window.
    pub window: Duration,
}

impl Default for Limits {
    /// 5 per account, 20 per address, per minute.
    fn default() -> Self {
        Self {
            per_account: 5,
            per_address: 20,
            window: Duration::from_secs(60),
        }
    }
}

/// Which bucket refused an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitedBy {
    /// Too many failures for the account.
    Account,
    /// Too many failures from the address.
    Address,
}

/// A refused attempt: which bucket, and the seconds until a slot frees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limited {
    /// The bucket.
    pub by: LimitedBy,
    /// Seconds to wait (at least 1).
    pub retry_after_secs: u64,
}

#[derive(Debug, Default)]
struct Bucket {
    failures: VecDeque<Instant>,
    in_flight: usize,
}

impl Bucket {
    fn prune(&mut self, now: Instant, window: Duration) {
        while self
            .failures
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            self.failures.pop_front();
        }
    }

    fn used(&self) -> usize {
        self.failures.len() + self.in_flight
    }

    fn wait(&self, now: Instant, window: Duration) -> u64 {
        let oldest = self.failures.front().copied().unwrap_or(now);
        window
            .saturating_sub(now.saturating_duration_since(oldest))
            .as_secs()
            .max(1)
    }
}

#[derive(Debug, Default)]
struct State {
    accounts: HashMap<String, Bucket>,
    addresses: HashMap<IpAddr, Bucket>,
}

/// Most buckets of each kind kept; idle ones are dropped past it.
const MAX_TRACKED: usize = 100_000;

/// The limiter (share it with an `Arc`).
#[derive(Debug, Default)]
pub struct SignInLimiter {
    limits: Limits,
    state: Arc<Mutex<State>>,
}

impl SignInLimiter {
    /// A limiter with `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            state: Arc::default(),
        }
    }

    /// The settings.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Reserves a slot for a sign-in of `account` from `address`, or refuses it.
    pub fn begin(&self, account: &str, address: IpAddr, now: Instant) -> Result<Attempt, Limited> {
        let account: String = account.chars().take(256).collect();
        let w = self.limits.window;
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.accounts.len() >= MAX_TRACKED || st.addresses.len() >= MAX_TRACKED {
            st.accounts.retain(|_, b| {
                b.prune(now, w);
                b.used() > 0
            });
            st.addresses.retain(|_, b| {
                b.prune(now, w);
                b.used() > 0
            });
        }
        let a = st.accounts.entry(account.clone()).or_default();
        a.prune(now, w);
        if a.used() >= self.limits.per_account {
            return Err(Limited {
                by: LimitedBy::Account,
                retry_after_secs: a.wait(now, w),
            });
        }
        let ip = st.addresses.entry(address).or_default();
        ip.prune(now, w);
        if ip.used() >= self.limits.per_address {
            return Err(Limited {
                by: LimitedBy::Address,
                retry_after_secs: ip.wait(now, w),
            });
        }
        ip.in_flight += 1;
        if let Some(a) = st.accounts.get_mut(&account) {
            a.in_flight += 1;
        }
        Ok(Attempt {
            state: Arc::clone(&self.state),
            account,
            address,
            open: true,
        })
    }
}

/// A reserved sign-in attempt. Dropping it without an outcome releases the reservation.
#[derive(Debug)]
pub struct Attempt {
    state: Arc<Mutex<State>>,
    account: String,
    address: IpAddr,
    open: bool,
}

impl Attempt {
    fn close(&mut self, failed_at: Option<Instant>) {
        if !self.open {
            return;
        }
        self.open = false;
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = st.accounts.get_mut(&self.account) {
            b.in_flight = b.in_flight.saturating_sub(1);
            if let Some(t) = failed_at {
                b.failures.push_back(t);
            }
        }
        if let Some(b) = st.addresses.get_mut(&self.address) {
            b.in_flight = b.in_flight.saturating_sub(1);
            if let Some(t) = failed_at {
                b.failures.push_back(t);
            }
        }
    }

    /// The password was wrong (or the account unknown): counts against both buckets.
    pub fn failed(mut self, now: Instant) {
        self.close(Some(now));
    }

    /// Signed in: the reservation is released (earlier failures still count until they age
    /// out of the window, so a success does not reset an attacker's count).
    pub fn succeeded(mut self) {
        self.close(None);
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        self.close(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn reservations_count_before_the_outcome_is_known() {
        let l = SignInLimiter::default();
        let t = Instant::now();
        // Six attempts in flight at once: the sixth is refused before any has failed.
        let held: Vec<Attempt> = (0..5).map(|_| l.begin("ada", A, t).unwrap()).collect();
        let refused = l.begin("ada", A, t).unwrap_err();
        assert_eq!(refused.by, LimitedBy::Account);
        // Other accounts from the same address are not affected by ada's bucket.
        drop(l.begin("bob", A, t).unwrap());
        for a in held {
            a.failed(t);
        }
        // The account is limited from every address until the window passes.
        assert_eq!(l.begin("ada", B, t).unwrap_err().retry_after_secs, 60);
        assert!(l.begin("ada", B, t + Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn an_address_is_limited_across_accounts_and_dropped_attempts_release() {
        let l = SignInLimiter::new(Limits {
            per_account: 5,
            per_address: 3,
            window: Duration::from_secs(60),
        });
        let t = Instant::now();
        for name in ["a", "b", "c"] {
            l.begin(name, A, t).unwrap().failed(t);
        }
        assert_eq!(l.begin("d", A, t).unwrap_err().by, LimitedBy::Address);
        assert!(l.begin("d", B, t).is_ok());
        // A success releases its slot without resetting failures.
        let s = l.begin("e", B, t).unwrap();
        s.succeeded();
        drop(l.begin("e", B, t).unwrap());
        assert!(l.begin("e", B, t).is_ok());
    }
}
