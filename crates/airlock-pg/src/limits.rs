//! Connection caps (all client sessions, and each user's) and the budget of
//! refused logins that are audited one by one, so an unauthenticated flood
//! can neither exhaust the proxy nor serialise the audit chain behind it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Live client connections, in all and by user.
#[derive(Default)]
pub struct Connections {
    all: AtomicUsize,
    by_user: Mutex<HashMap<String, usize>>,
}

/// One connection counted in [`Connections`] until dropped.
pub struct Slot {
    owner: Arc<Connections>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.owner.all.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One user's connection counted until dropped.
pub struct UserSlot {
    owner: Arc<Connections>,
    user: String,
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        if let Ok(mut map) = self.owner.by_user.lock() {
            if let Some(n) = map.get_mut(&self.user) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(&self.user);
                }
            }
        }
    }
}

impl Connections {
    /// Counts a new connection; `None` when `cap` (0: no cap) are live already.
    pub fn connect(self: &Arc<Self>, cap: usize) -> Option<Slot> {
        let before = self.all.fetch_add(1, Ordering::Relaxed);
        let slot = Slot {
            owner: self.clone(),
        };
        (cap == 0 || before < cap).then_some(slot)
    }

    /// Counts a session of `user`; `None` when `cap` (0: no cap) of theirs are live.
    pub fn user(self: &Arc<Self>, user: &str, cap: usize) -> Option<UserSlot> {
        let mut map = self.by_user.lock().ok()?;
        let n = map.entry(user.to_string()).or_insert(0);
        if cap != 0 && *n >= cap {
            return None;
        }
        *n += 1;
        Some(UserSlot {
            owner: self.clone(),
            user: user.to_string(),
        })
    }
}

/// At most `per_second` refused logins are audited one by one each second;
/// the rest are counted and reported with the next one audited.
pub struct RefusalBudget {
    per_second: u32,
    state: Mutex<Window>,
}

struct Window {
    started: Instant,
    used: u32,
    suppressed: u64,
}

impl RefusalBudget {
    /// A budget of `per_second` audited refusals a second.
    pub fn new(per_second: u32) -> Self {
        RefusalBudget {
            per_second,
            state: Mutex::new(Window {
                started: Instant::now(),
                used: 0,
                suppressed: 0,
            }),
        }
    }

    /// `Some(n)`: audit this refusal, noting the `n` left unaudited before
    /// it; `None`: over budget, counted instead.
    pub fn take(&self) -> Option<u64> {
        let mut w = self.state.lock().ok()?;
        if w.started.elapsed() >= Duration::from_secs(1) {
            w.started = Instant::now();
            w.used = 0;
        }
        if w.used < self.per_second {
            w.used += 1;
            Some(std::mem::take(&mut w.suppressed))
        } else {
            w.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_and_release() {
        let c = Arc::new(Connections::default());
        let a = c.connect(2).expect("first");
        let b = c.connect(2).expect("second");
        assert!(c.connect(2).is_none(), "third over the cap");
        drop(a);
        assert!(c.connect(2).is_some(), "a slot was freed");
        drop(b);
        let u1 = c.user("alice", 1).expect("alice");
        assert!(c.user("alice", 1).is_none());
        assert!(c.user("bob", 1).is_some(), "caps are per user");
        drop(u1);
        assert!(c.user("alice", 1).is_some());
        assert!(
            c.user("carol", 0).is_some() && c.user("carol", 0).is_some(),
            "0: no cap"
        );
    }

    #[test]
    fn refusals_over_budget_are_counted_and_reported_later() {
        let b = RefusalBudget::new(2);
        assert_eq!(b.take(), Some(0));
        assert_eq!(b.take(), Some(0));
        assert_eq!(b.take(), None);
        assert_eq!(b.take(), None);
        std::thread::sleep(Duration::from_millis(1050));
        assert_eq!(
            b.take(),
            Some(2),
            "the next audited refusal reports the 2 skipped"
        );
        assert_eq!(b.take(), Some(0));
    }
}
